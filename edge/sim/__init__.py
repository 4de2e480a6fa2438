"""Scene simulator with ground truth: seeded scenario files -> recordings + truth.json.

``render_scenario(scenario_file, out_dir)`` renders one; ``python -m edge.sim.render_all``
renders every scenario in sample_streams/ whose output is missing or stale.
"""
from edge.sim.render import GENERATOR_VERSION, render_scenario
from edge.sim.scenario import Scenario, ScenarioError, load_scenario

__all__ = ["GENERATOR_VERSION", "render_scenario", "Scenario", "ScenarioError", "load_scenario"]
