"""The main job: what `vlengine pretrain` runs with no arguments.

A small VL-BERT (3 layers, hidden 128) pretrained on the embedded corpus (built
on first use) on one CPU process through DeepSpeed, with VL-BERT's recipe:
whole-word MLM with visual clues + masked RoI classification, text-only rows
mixed into every step, plus the sentence-image relation (ITM) head so that
zero-shot retrieval can be measured. Sized to finish in under 10 minutes on a
2-core CPU, then evaluated on the held-out split (see main_eval.py).
"""

MAIN_JOB = {
    "recipe": "vlbert",
    "model": {
        "preset": "tiny",
        "vocab_size": "auto",            # the corpus' WordPiece vocabulary
        "num_region_classes": "auto",    # shape x colour x size classes of the corpus
        "hidden_size": 128,
        "num_layers": 3,
        "num_heads": 4,
        "intermediate_size": 512,
        "region_feature_size": 2048,
        "geometry_frequencies": 32,
        "max_position_embeddings": 128,
        # From scratch, short and small: Pre-LN, no dropout and a wider init learned the caption
        # language several times faster than BERT's defaults in runs on this machine.
        "pre_layer_norm": True,
        "hidden_dropout": 0.0,
        "attention_dropout": 0.0,
        "visual_dropout": 0.0,
        "initializer_range": 0.05,
    },
    "objective": {"mrc_weight": 1.0, "itm_weight": 1.0, "region_visual_ln_init": 1.0},
    "masking": {"region_targets": "hard"},   # the corpus has exact labels, no detector score vectors
    "data": {
        "corpus": "embedded",
        "text_ratio": 1.0,          # one text-only batch per caption batch (VL-BERT)
        "text_batch_size": 8,
        "text_chunk_len": 32,
        "itm_negative_prob": 0.25,
    },
    "deepspeed": {
        "train_micro_batch_size_per_gpu": 32,
        "gradient_accumulation_steps": 1,
        "gradient_clipping": 10.0,          # VL-BERT's clip
        "zero_optimization": {"stage": 0},  # one process: nothing to partition
    },
    "train": {
        # Measured on this machine (2 cores, two such runs side by side, ~12 steps/s alone), after
        # ITM negatives got masked like positives (vlengine.data.masking.ConditionalMasking):
        #   lr 3e-3: 1600 steps -> visual-clue gain +2.6 points; lr 5e-4 / 1e-3: +14.8 / +14.3;
        #   lr 1e-3: 3200 -> +29.9 (5.3 min), 4000 -> +30.8 (7.0 min), 4400 -> +31.5 (7.7 min);
        #   lr 1.5e-3, 4000 -> +30.9; MLM masking 30% instead of 15%, 3200 -> +27.4.
        # 4400 steps alone took 9.5 min on a later, slower hour of the same machine: 4000 keeps a margin.
        "total_steps": 4000,
        "warmup_steps": 100,
        "lr": 1e-3,
        "weight_decay": 0.01,
        "log_every": 50,
        "save_every": 1000,
        "output_dir": "runs/main-job",
        "seed": 42,
        # One thread: measured on the 2-core machine shared by other jobs, two OpenMP threads spent
        # ~18x more CPU time per step (spin-waiting) than one.
        "threads": 1,
    },
    "eval": {"captions": 1000, "retrieval_images": 50},
}
