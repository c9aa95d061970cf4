"""Publishing release folders to the Hugging Face Hub: one commit per artifact, a tag that never moves, a receipt.

Without a token, or when ``release.dry_run`` is true (the default), nothing is sent: the receipt lists exactly what
would be pushed (repo, files, sizes, sha256, tag). With a token and ``dry_run: false``, per artifact:

1. the repo is created if missing;
2. if the tag already exists, its tree is compared with the local folder: identical means nothing to do, anything
   else is refused (:class:`TagConflictError`): tags never move, bump ``release.version`` instead;
3. if the branch head already holds exactly these files (a re-publish, or a retry whose earlier commit went
   through but whose answer was lost), no commit is made; otherwise every file goes up in ONE commit
   (``HfApi.create_commit``, with the head as ``parent_commit`` so a concurrent push cannot be overwritten);
4. only after that commit succeeded, the tag is created on it.

Transient errors (HTTP 408/429/5xx, network errors) are retried; each retry first re-reads the remote state, so a
retry never commits twice and a tag is never placed on an incomplete upload. The token comes from ``$HF_TOKEN`` or
the ``huggingface-cli login`` store (``huggingface_hub.get_token``) and is passed to the client only: it is never
written to the receipt, a card, a log line or an error message.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cards.release import ReleaseConfig, tag_for
from valueflow.hub import HUB_ATTEMPTS, HUB_RETRY_WAIT_S, hub_timeout, with_retries
from valueflow.io import InputError, write_json
from valueflow.redact import redact, remember_secret

log = logging.getLogger(__name__)

# Files that are local working state, never part of a release (a Hub cache, editor or OS droppings).
IGNORED_PARTS = (".cache", ".git", ".huggingface", "__pycache__", ".ipynb_checkpoints")
IGNORED_NAMES = (".DS_Store",)
# Created by the Hub with every repo; a release folder need not carry it, and it is never deleted remotely.
HUB_MANAGED = (".gitattributes",)


class PublishError(RuntimeError):
    """Publishing failed; the message says which repo and what to do. It never contains the token."""


class ReleaseNotBuilt(InputError):
    """A release folder is missing, empty or has no card: bad input, refused before anything is written."""


class TagConflictError(PublishError):
    """The version tag already points at a commit whose files differ from the local release."""


@dataclass(frozen=True)
class ReleaseFile:
    path: str  # POSIX path inside the repo
    size: int
    sha256: str
    git_oid: str  # git blob id: how the Hub identifies a regular (non-LFS) file

    def as_receipt(self) -> dict:
        return {"path": self.path, "size": self.size, "sha256": self.sha256}


@dataclass(frozen=True)
class Artifact:
    """One release folder and where it goes."""

    name: str  # "vidb", "hives" or "judge": the key in the receipt and in the release history
    folder: Path
    repo_id: str
    repo_type: str  # "dataset" or "model"


def artifacts_of(cfg: ReleaseConfig) -> list[Artifact]:
    return [
        Artifact("vidb", cfg.dataset_dir, cfg.dataset_repo, "dataset"),
        Artifact("hives", cfg.model_dir, cfg.model_repo, "model"),
        Artifact("judge", cfg.judge_dir, cfg.judge_repo, "model"),
    ]


def release_manifest(folder: str | Path) -> list[ReleaseFile]:
    """Every file of a release folder with its size and hashes, sorted by path (what a commit must contain)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ReleaseNotBuilt(f"{folder}: release folder not found (build it first: dvc repro)")
    files = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder)
        if any(part in IGNORED_PARTS for part in rel.parts) or rel.name in IGNORED_NAMES or rel.name.endswith(".tmp"):
            continue
        sha256, sha1 = hashlib.sha256(), hashlib.sha1()
        size = path.stat().st_size
        sha1.update(b"blob %d\0" % size)
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                sha256.update(chunk)
                sha1.update(chunk)
        files.append(ReleaseFile(rel.as_posix(), size, sha256.hexdigest(), sha1.hexdigest()))
    if not files:
        raise ReleaseNotBuilt(f"{folder}: release folder is empty")
    if not any(f.path == "README.md" for f in files):
        raise ReleaseNotBuilt(f"{folder}: no README.md (the card); render the cards before publishing")
    return files


def resolve_token(explicit: str | None = None) -> str | None:
    """``explicit``, else ``$HF_TOKEN``, else the stored HF login; None when there is none."""
    if explicit:
        return explicit
    from huggingface_hub import get_token

    return get_token()


# --- comparing with the Hub ------------------------------------------------------------------------------------


def _same_files(local: list[ReleaseFile], remote: dict[str, object]) -> tuple[bool, list[str]]:
    """Whether a remote tree holds exactly the local files; the differing paths (for messages)."""
    diff = []
    local_by_path = {f.path: f for f in local}
    for path, f in local_by_path.items():
        r = remote.get(path)
        if r is None:
            diff.append(f"{path} (missing remotely)")
        elif not _matches(f, r):
            diff.append(f"{path} (content differs)")
    for path in remote:
        if path not in local_by_path and path not in HUB_MANAGED:
            diff.append(f"{path} (only remotely)")
    return not diff, diff


def _matches(local: ReleaseFile, remote: object) -> bool:
    lfs = getattr(remote, "lfs", None)
    if lfs is not None:
        return lfs.sha256 == local.sha256 and lfs.size == local.size
    return getattr(remote, "blob_id", None) == local.git_oid


def _remote_tree(api, artifact: Artifact, revision: str) -> dict[str, object]:
    from huggingface_hub.hf_api import RepoFile

    entries = api.list_repo_tree(artifact.repo_id, repo_type=artifact.repo_type, revision=revision, recursive=True)
    return {e.path: e for e in entries if isinstance(e, RepoFile)}


def _refs(api, artifact: Artifact) -> tuple[dict[str, str], dict[str, str]]:
    refs = api.list_repo_refs(artifact.repo_id, repo_type=artifact.repo_type)
    return {b.name: b.target_commit for b in refs.branches}, {t.name: t.target_commit for t in refs.tags}


# --- publishing ------------------------------------------------------------------------------------------------


def publish_artifact(
    api,
    artifact: Artifact,
    version: str,
    files: list[ReleaseFile],
    *,
    private: bool = False,
    attempts: int = HUB_ATTEMPTS,
    wait_s: float = HUB_RETRY_WAIT_S,
    sleep=time.sleep,
) -> dict:
    """Push one release folder as one commit and tag it; return what happened (for the receipt)."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    tag = tag_for(version)
    where = f"{artifact.repo_type} repo {artifact.repo_id}"
    retry = lambda what, fn: with_retries(f"{where}: {what}", fn, attempts, wait_s, error=PublishError, sleep=sleep)

    retry("create repo", lambda: api.create_repo(artifact.repo_id, repo_type=artifact.repo_type, private=private, exist_ok=True))

    def check_tag() -> str | None:
        """The commit the tag already points at, when its tree is exactly ours; refuse any other."""
        _, tags = _refs(api, artifact)
        if tag not in tags:
            return None
        same, diff = _same_files(files, _remote_tree(api, artifact, tags[tag]))
        if not same:
            shown = ", ".join(diff[:5]) + (f" and {len(diff) - 5} more" if len(diff) > 5 else "")
            raise TagConflictError(
                f"{where}: tag {tag} already points at commit {tags[tag]}, whose files differ from {artifact.folder} "
                f"({shown}). Tags never move: bump release.version in params.yaml to publish these files."
            )
        return tags[tag]

    tagged = retry("read tags", check_tag)
    if tagged is not None:
        log.info("%s: %s already published at %s; nothing to do", where, tag, tagged)
        return {"action": "unchanged", "commit": tagged, "tag_commit": tagged}

    def commit_once() -> tuple[str, str]:
        """One attempt: re-read the head (a lost answer may mean the last attempt did commit), then commit."""
        branches, _ = _refs(api, artifact)
        head = branches.get("main")
        remote = _remote_tree(api, artifact, head) if head else {}
        same, _ = _same_files(files, remote)
        if same and head:
            return "already-on-main", head
        ops = [CommitOperationAdd(path_in_repo=f.path, path_or_fileobj=str(artifact.folder / f.path)) for f in files]
        local = {f.path for f in files}
        ops += [CommitOperationDelete(path_in_repo=p) for p in sorted(remote) if p not in local and p not in HUB_MANAGED]
        info = api.create_commit(
            artifact.repo_id,
            operations=ops,
            repo_type=artifact.repo_type,
            commit_message=f"Release {tag}",
            commit_description=f"{artifact.name} {version}: {len(files)} files, {sum(f.size for f in files)} bytes.",
            parent_commit=head,
        )
        return "committed", info.oid

    action, commit = retry("upload and commit", commit_once)

    def create_tag() -> None:
        from huggingface_hub.errors import HfHubHTTPError

        try:
            api.create_tag(artifact.repo_id, repo_type=artifact.repo_type, tag=tag, revision=commit,
                           tag_message=f"{artifact.name} {version}")
        except HfHubHTTPError as err:
            if getattr(err.response, "status_code", None) != 409:
                raise
            _, tags = _refs(api, artifact)  # an earlier attempt's answer was lost, or someone else tagged
            if tags.get(tag) != commit:
                raise TagConflictError(
                    f"{where}: tag {tag} was created meanwhile on commit {tags.get(tag)}, not on {commit}. "
                    "Tags never move: check who published and bump release.version."
                ) from None

    retry(f"create tag {tag}", create_tag)
    log.info("%s: %s -> %s (%s)", where, tag, commit, action)
    return {"action": action, "commit": commit, "tag_commit": commit}


def publish(
    cfg: ReleaseConfig,
    *,
    token: str | None = None,
    push: bool | None = None,
    api_factory: Callable[..., object] | None = None,
    sleep=time.sleep,
    artifacts: Iterable[Artifact] | None = None,
) -> dict:
    """Publish (or plan) a release and write its receipt to ``cfg.receipt``; return the receipt.

    ``push`` overrides ``not cfg.dry_run``. A push without a token falls back to the dry-run receipt and says why.
    """
    from valueflow.io import check_outputs

    artifacts = list(artifacts if artifacts is not None else artifacts_of(cfg))
    tag = cfg.tag
    check_outputs({"release.receipt": cfg.receipt}, {f"release folder {a.name}": a.folder for a in artifacts})
    manifests = {a.name: release_manifest(a.folder) for a in artifacts}
    want_push = (not cfg.dry_run) if push is None else push
    token = resolve_token(token) if want_push else None
    if token:
        from valueflow.chat_http import check_secret_transport

        remember_secret(token)
        if cfg.endpoint:
            check_secret_transport(cfg.endpoint, "the Hub token", allow_insecure_http=cfg.allow_insecure_http,
                                   where="release.endpoint")
    if want_push and not token:
        mode, reason = "dry-run", "no token: set HF_TOKEN or run `hf auth login`"
    elif want_push:
        mode, reason = "push", ""
    else:
        mode, reason = "dry-run", "release.dry_run is true"
    endpoint = cfg.endpoint
    receipt: dict = {
        "version": cfg.version,
        "tag": tag,
        "mode": mode,
        "reason": reason,
        "endpoint": _public_endpoint(endpoint),
        "artifacts": {},
    }
    for a in artifacts:
        files = manifests[a.name]
        receipt["artifacts"][a.name] = {
            "repo_id": a.repo_id,
            "repo_type": a.repo_type,
            "tag": tag,
            "folder": str(a.folder),
            "n_files": len(files),
            "total_bytes": sum(f.size for f in files),
            "files": [f.as_receipt() for f in files],
            "action": "would-push" if mode == "dry-run" else "pending",
        }
    if mode == "push":
        try:
            if api_factory is None:
                from huggingface_hub import HfApi

                api_factory = HfApi
            api = api_factory(endpoint=endpoint, token=token)
            with hub_timeout(float(cfg.timeout_s)):
                for a in artifacts:
                    result = publish_artifact(api, a, cfg.version, manifests[a.name], private=cfg.private,
                                              attempts=int(cfg.max_attempts), wait_s=float(cfg.retry_wait_s), sleep=sleep)
                    receipt["artifacts"][a.name].update(result)
                    url = _public_endpoint(endpoint) or "https://huggingface.co"
                    prefix = "datasets/" if a.repo_type == "dataset" else ""
                    receipt["artifacts"][a.name]["url"] = f"{url}/{prefix}{a.repo_id}/tree/{tag}"
        except PublishError as err:
            receipt["error"] = redact(str(err))
            write_json(receipt, cfg.receipt)
            raise
    write_json(receipt, cfg.receipt)
    return receipt


def _public_endpoint(endpoint: str | None) -> str | None:
    """The endpoint without any credentials a URL might carry (user:password@host)."""
    if not endpoint:
        return None
    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "") + parts.path.rstrip("/")


def format_receipt(receipt: dict) -> str:
    """A few lines for the terminal: per artifact the repo, tag, file count, bytes and what happened."""
    lines = [f"release {receipt['tag']} ({receipt['mode']}{': ' + receipt['reason'] if receipt['reason'] else ''})"]
    for name, a in receipt["artifacts"].items():
        commit = f" commit {a['commit'][:12]}" if a.get("commit") else ""
        lines.append(f"  {name}: {a['repo_type']} {a['repo_id']}@{a['tag']}  {a['n_files']} files, "
                     f"{a['total_bytes']:,} bytes  {a['action']}{commit}")
    return "\n".join(lines)


def publish_release(cfg: ReleaseConfig) -> dict:
    """The ``publish`` stage: CITATION.cff at the release version, :func:`publish`, ``metrics/publish.json``, and
    for a push the release record under ``releases/`` that the next changelog compares with. Returns the receipt.
    """
    from cards.release import write_citation_cff, write_release_record
    from valueflow.io import write_metrics

    started = time.perf_counter()
    try:  # publish checks its inputs first: a bad one (exit 2) leaves every file as it was, CITATION.cff too
        result = publish(cfg)
    except PublishError:
        write_citation_cff(cfg.version)
        raise
    write_citation_cff(cfg.version)
    metrics = {
        "version": cfg.version,
        "pushed": result["mode"] == "push",
        "seconds": round(time.perf_counter() - started, 3),
        **{f"{name}_{k}": a[k] for name, a in result["artifacts"].items() for k in ("n_files", "total_bytes")},
        "new_commits": sum(a.get("action") == "committed" for a in result["artifacts"].values()),
    }
    write_metrics("publish", metrics, out=cfg.receipt)  # an ad-hoc --receipt keeps its metrics beside it
    if result["mode"] == "push":
        write_release_record(cfg.history_dir, cfg.version, {
            name: {"repo_id": a["repo_id"], "commit": a.get("commit"), "stats": _artifact_stats(name, Path(a["folder"]))}
            for name, a in result["artifacts"].items()
        })
    return result


def _artifact_stats(name: str, folder: Path) -> dict:
    """The counts the next release's changelog compares with: VIDB's stats.json, HiVES's evaluation metrics.

    The same shapes the cards pass to ``card_release_section``, so a card's changelog compares like with like.
    """
    from cards.release import model_changelog_stats

    if name == "vidb" and (folder / "stats.json").is_file():
        return json.loads((folder / "stats.json").read_text(encoding="utf-8"))
    if name == "hives" and Path("metrics/hives.json").is_file():
        return model_changelog_stats(json.loads(Path("metrics/hives.json").read_text(encoding="utf-8")))
    return {}
