"""Renderings of plans and state. Each is made from the JSON form, so none can disagree."""

from navarch_plan.render.json import render_json
from navarch_plan.render.state import render_state_text
from navarch_plan.render.text import render_plan_text

__all__ = ["render_json", "render_plan_text", "render_state_text"]
