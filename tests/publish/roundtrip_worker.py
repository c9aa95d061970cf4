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
        import json

        import torch
        from huggingface_hub import hf_hub_download
        from sentence_transformers import SentenceTransformer

        from valueflow.judges.value_head import CALIBRATION_FILE, VALUES_FILE

        torch.set_num_threads(1)
        texts = ["Helping a stranger carry groceries.", "Stealing bread."]
        np.save(out / "hub_judge_scores.npy", SentenceTransformer(args.judge, revision=revision, device="cpu").encode(texts))
        np.save(out / "local_judge_scores.npy", SentenceTransformer(args.local_judge, device="cpu").encode(texts))
        for name, saved in ((CALIBRATION_FILE, "judge_calibration.json"), (VALUES_FILE, "judge_values.json")):
            # fetched from the Hub repo beside the weights, at the tag
            (out / saved).write_text(Path(hf_hub_download(args.judge, name, revision=revision)).read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
