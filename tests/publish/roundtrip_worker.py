"""Load a published release back from the loopback Hub, the way users do, and dump what came back.

Run as a subprocess by the round-trip tests, so that HF_ENDPOINT & co. are set before ``huggingface_hub``,
``datasets`` and ``sentence_transformers`` are imported (they read the endpoint at import time), whatever the test
process imported before.

    python roundtrip_worker.py ENDPOINT VERSION OUT_DIR [--dataset REPO] [--model REPO --local-model DIR]
                                                      [--judge REPO --local-judge DIR]

Writes OUT_DIR/<config>/<split>.parquet for every split of every config of the dataset at ``revision=v<VERSION>``,
and OUT_DIR/hub_embeddings.npy / local_embeddings.npy from the model at that revision and from the local folder.
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("endpoint")
    ap.add_argument("version")
    ap.add_argument("out")
    ap.add_argument("--dataset")
    ap.add_argument("--configs", nargs="*", default=["full", "filtered", "rankings"])
    ap.add_argument("--model")
    ap.add_argument("--local-model")
    ap.add_argument("--judge")
    ap.add_argument("--local-judge")
    args = ap.parse_args(argv)

    os.environ["HF_ENDPOINT"] = args.endpoint
    os.environ["HF_HUB_DISABLE_XET"] = "1"
    os.environ["HF_UPDATE_DOWNLOAD_COUNTS"] = "0"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    os.environ.pop("HF_HUB_OFFLINE", None)
    os.environ.pop("HF_DATASETS_OFFLINE", None)
    os.environ.pop("TRANSFORMERS_OFFLINE", None)

    from pathlib import Path

    import numpy as np

    out = Path(args.out)
    revision = f"v{args.version}"
    if args.dataset:
        from datasets import load_dataset

        for config in args.configs:
            ds = load_dataset(args.dataset, config, revision=revision)
            for split, part in ds.items():
                (out / config).mkdir(parents=True, exist_ok=True)
                part.to_pandas().to_parquet(out / config / f"{split}.parquet", index=False)
    if args.model:
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(1)
        sentences = ["Helping a stranger carry groceries.", "Breaking a promise to a friend.", "Voting in elections."]
        hub = SentenceTransformer(args.model, revision=revision, device="cpu")
        local = SentenceTransformer(args.local_model, device="cpu")
        np.save(out / "hub_embeddings.npy", hub.encode(sentences))
        np.save(out / "local_embeddings.npy", local.encode(sentences))
    if args.judge:
        import torch
        from sentence_transformers import CrossEncoder

        from valueflow.judges.cross import load_calibration, value_query

        torch.set_num_threads(1)
        pairs = [(value_query("benevolence"), "Helping a stranger carry groceries."), (value_query("justice"), "Stealing bread.")]
        np.save(out / "hub_judge_scores.npy", CrossEncoder(args.judge, revision=revision, device="cpu").predict(pairs))
        np.save(out / "local_judge_scores.npy", CrossEncoder(args.local_judge, device="cpu").predict(pairs))
        calibration = load_calibration(args.judge)  # fetched from the Hub repo beside the weights
        (out / "judge_calibration.json").write_text("null" if calibration is None else __import__("json").dumps(calibration.to_json()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
