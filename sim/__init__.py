"""robosuite simulation for policy_stack (imports robosuite; the core policy_stack/ never imports this).

Modules:
  sim.envs     make_env(name, cameras, image_size, depth, seed, ...) -> SimEnv with the observation
               convention of docs/CONVENTIONS.md, fast rendering, seeded resets, camera intrinsics/poses.
  sim.experts  make_expert(name, noise, suboptimal, rng): scripted experts from privileged state
               (lift, pick_place_can, stack, nut_assembly_square, and multi_cube* on the skill primitives
               of policy_stack/skills/primitives.py).
  sim.multi_cube       the language tasks multi_cube / _pick / _stack / _tower: seeded layout + instruction,
                       instructed-object success, a `grounding` RGB-D camera, env.ground_truth()
  sim.instructions     instruction templates, attributes, splits, sub-instructions, parser (pure Python)
  sim.pick_place_multi, sim.pick_place_language   robosuite PickPlace with all four objects, an
                       instruction naming one ("put the can in its bin"); its grammar (pure Python)
  sim.nut_assembly_both, sim.nut_language   NutAssembly with both nuts ("put the round nut on the round peg")
  sim.keypoint_labels  keypoint labels from sim state (projection + segmentation/depth visibility check)
  sim.grounding_data   the grounding-data collector behind `policy-stack collect --grounding`
Episodes (of an expert, `make_expert(...).bind(env)`, or a policy) run through the core's one episode
loop, policy_stack.episode.run_episode.
Throughput and expert success: `python -m bench.bench_sim`.
"""
