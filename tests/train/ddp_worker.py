"""One rank of the distributed fine-tuning test (run by torch.distributed.run, not by pytest).

Arguments: SET BASE OUT RESULTS_DIR. Each rank writes RESULTS_DIR/rank<N>.json with the
checksum of its final weights and what it wrote.
"""

import json
import os
import sys
from pathlib import Path

import torch

from napari_samed2.train.finetune import FinetuneSettings, finetune

torch.set_num_threads(1)
labelset, base, out, results = sys.argv[1:5]
settings = FinetuneSettings(eval_every=1, num_frames=3, objects_per_clip=2, warmup=1, lr=3e-3)
result = finetune(labelset, base, out, steps=3, device="cpu", holdout=0.3, settings=settings)
record = {
    "final": result.final_weights_sha256,
    "path": None if result.path is None else str(result.path),
    "steps": result.steps,
    "world_size": result.card["settings"]["world_size"],
}
rank = os.environ["RANK"]
Path(results, f"rank{rank}.json").write_text(json.dumps(record))
