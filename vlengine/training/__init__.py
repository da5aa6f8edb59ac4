"""vlengine.training: the DeepSpeed pretraining loop, checkpoints, logging and the `vlengine pretrain` command.

    from vlengine.training.config import PretrainConfig
    from vlengine.training.run import run_pretraining
    result = run_pretraining(PretrainConfig.from_file("train/configs/cpu_gloo_smoke.yaml"))
    result.losses, result.last_metrics, result.eval_metrics

Pieces, one per file:
    config.py           PretrainConfig (YAML/JSON, `section.key=value` overrides), the shipped configs' folder
    sections.py         the typed sections: model, objective per recipe, masking, data, eval
    fidelity.py         `fidelity: paper | released`: the value of each paper-vs-code departure a config leaves open
    run_config.py       config.yaml beside a run's checkpoints; the settings a resume may not change
    export_checks.py    `pretrain export`: checkpoints folder and tag checks, the config beside the weights
    settings.py         TrainSettings: steps, warm-up, LR, logging/saving/eval cadence, output_dir
    recipes.py          objective + masking + task schedule per paper (vlbert, interbert, semvlp, cssbert)
    data_setup.py       corpus paths (the embedded corpus by default) and the resumable loader (vlengine.data.loading)
    engine.py           process group (deepspeed launcher, torchrun or one plain process) and deepspeed.initialize
    loop.py             train(): task draw, masking, forward/backward/step, logging, checkpoints, evaluation
    task_mixing.py      TaskMixer / StagedTaskMixer: per-step task, identical on every rank, a function of (seed, step)
    checkpoint.py       crash-safe save (temp tag, manifest, atomic `latest`), load, fp32 safetensors export
    rng.py              RNG states of torch / numpy / python for exact resume
    throughput.py       samples/s, tokens/s, MFU (GPU spec peaks; measured matmul peak on a CPU)
    monitor.py          tqdm bar, console lines, TensorBoard scalars, metrics.jsonl
    plots.py            PNG curves from metrics.jsonl (`vlengine plot`, and the end of every run)
    main_eval.py        the held-out evaluation that ends a run (vlengine.tasks.grounding_eval)
    cli.py              `vlengine pretrain [--config FILE] [--set k=v] ...` and `vlengine pretrain export`

Objectives (vlengine.tasks) are nn.Modules with forward(batch, task) -> TaskOutput(loss, metrics)
and optionally prepare_batch(batch, task, generator) (masking, on the host, before the batch moves).
"""
