"""robosuite simulation for policy_stack (imports robosuite; the core policy_stack/ never imports this).

Modules:
  sim.envs     make_env(name, cameras, image_size, depth, seed, ...) -> SimEnv with the observation
               convention of docs/CONVENTIONS.md, fast rendering, seeded resets, camera intrinsics/poses.
  sim.experts  make_expert(name, noise, suboptimal, rng): scripted experts from privileged state
               (lift, pick_place_can, stack, nut_assembly_square).
Episodes (of an expert, `make_expert(...).bind(env)`, or a policy) run through the core's one episode
loop, policy_stack.episode.run_episode.
Throughput and expert success: `python -m bench.bench_sim`.
"""
