from navarch_plan.cli.main import run

run()
