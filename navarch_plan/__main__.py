from navarch_plan.cli import run

run()
