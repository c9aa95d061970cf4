"""A small Hugging Face Hub look-alike on loopback, for the publishing round-trip tests.

It implements only what ``huggingface_hub`` 2.4 (HfApi, hf_hub_download, HfFileSystem), ``datasets`` and
``sentence-transformers`` call when a release is pushed and loaded again: repo create, preupload, the LFS batch
API with its PUT upload and verify, the NDJSON commit, tags and refs, repo info per revision, tree listing,
paths-info, commit listing, YAML validation and ``resolve`` downloads (HEAD and GET, with ``Range``, ``ETag``,
``X-Repo-Commit`` and ``X-Linked-*`` headers). Storage is in memory; commits are immutable snapshots.

Failure injection (``HubServer.fail``) makes a route answer with an HTTP error a given number of times, which is
how the tests simulate a transient fault in the middle of an upload. Every request is logged (method, path and
whether an Authorization header came with it), never the header's value.

Standard library only (plus PyYAML for the card metadata), so the server can run in the test process before any
Hugging Face library is imported.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

# Paths the real Hub stores with LFS through its default .gitattributes (a subset is enough here).
LFS_SUFFIXES = (".parquet", ".safetensors", ".bin", ".onnx", ".pt", ".pth", ".npy", ".arrow", ".h5", ".msgpack", ".model")
LFS_MIN_SIZE = 10 * 1024 * 1024


def git_blob_oid(content: bytes) -> str:
    """The git blob id of ``content``: what the Hub reports as ``oid`` for a regular (non-LFS) file."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


@dataclass(frozen=True)
class Blob:
    size: int
    oid: str  # git blob id (of the content, or of the LFS pointer for an LFS file)
    sha256: str | None = None  # set for LFS files
    content: bytes | None = None  # set for regular files

    def as_entry(self, path: str) -> dict:
        entry = {"type": "file", "path": path, "size": self.size, "oid": self.oid}
        if self.sha256:
            entry["lfs"] = {"oid": self.sha256, "size": self.size, "pointerSize": len(lfs_pointer(self.sha256, self.size))}
        return entry


@dataclass
class Commit:
    oid: str
    parent: str | None
    title: str
    files: dict[str, Blob]
    date: str


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    def resolve(self, revision: str) -> Commit | None:
        revision = unquote(revision)
        for prefix, table in (("refs/heads/", self.branches), ("refs/tags/", self.tags)):
            revision = revision.removeprefix(prefix)
        oid = self.branches.get(revision) or self.tags.get(revision)
        if oid is None and re.fullmatch(r"[0-9a-f]{40}", revision):
            oid = revision if revision in self.commits else None
        return self.commits.get(oid) if oid else None


def card_metadata_errors(content: str, repo_type: str) -> list[str]:
    """The Hub's README metadata rules that the cards rely on (what ``/api/validate-yaml`` rejects).

    Not the Hub's full rule set: the structure of the fields the Hub, ``datasets`` and the model pages interpret
    (licence, language, tags, configs and dataset_info for datasets, base_model and model-index for models).
    """
    if not content.startswith("---"):
        return []
    try:
        meta = yaml.safe_load(content.split("---", 2)[1])
    except (yaml.YAMLError, IndexError) as err:
        return [f"YAML does not parse: {err}"]
    if meta is None:
        return []
    if not isinstance(meta, dict):
        return ["metadata must be a YAML mapping"]
    errors = []
    str_or_list = lambda v: isinstance(v, str) or (isinstance(v, list) and all(isinstance(x, str) for x in v))
    for key in ("license", "language", "tags", "task_categories", "task_ids", "size_categories", "base_model", "datasets"):
        if key in meta and not str_or_list(meta[key]):
            errors.append(f'"{key}" must be a string or a list of strings')
    if meta.get("license") == "other" or (isinstance(meta.get("license"), list) and "other" in meta["license"]):
        name = meta.get("license_name")
        if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9.-]*", name):
            errors.append('"license_name" (lowercase letters, digits, "-" and ".") is required with license: other')
    if repo_type == "dataset":
        configs = meta.get("configs", [])
        if not isinstance(configs, list):
            errors.append('"configs" must be a list')
            configs = []
        for i, c in enumerate(configs):
            if not isinstance(c, dict) or not isinstance(c.get("config_name"), str):
                errors.append(f'"configs[{i}].config_name" must be a string')
                continue
            files = c.get("data_files")
            entries = files if isinstance(files, list) else [files]
            for f in entries:
                if not (isinstance(f, str) or (isinstance(f, dict) and isinstance(f.get("split"), str)
                                               and str_or_list(f.get("path")))):
                    errors.append(f'"configs[{i}].data_files" entries must be paths or {{split, path}}')
        infos = meta.get("dataset_info", [])
        for i, info in enumerate(infos if isinstance(infos, list) else [infos]):
            if not isinstance(info, dict):
                errors.append(f'"dataset_info[{i}]" must be a mapping')
            elif isinstance(infos, list) and len(infos) > 1 and not isinstance(info.get("config_name"), str):
                errors.append(f'"dataset_info[{i}].config_name" is required when several configs are described')
    if "model-index" in meta:
        index = meta["model-index"]
        ok = isinstance(index, list) and all(
            isinstance(m, dict) and isinstance(m.get("name"), str) and isinstance(m.get("results"), list) and all(
                isinstance(r, dict) and isinstance(r.get("task"), dict) and isinstance(r["task"].get("type"), str)
                and isinstance(r.get("dataset"), dict) and isinstance(r["dataset"].get("type"), str)
                and isinstance(r["dataset"].get("name"), str) and isinstance(r.get("metrics"), list)
                and all(isinstance(x, dict) and isinstance(x.get("type"), str) and "value" in x for x in r["metrics"])
                for r in m["results"])
            for m in index)
        if not ok:
            errors.append('"model-index" must be [{name, results: [{task: {type}, dataset: {type, name}, metrics: [{type, value}]}]}]')
    return errors


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


class HubState:
    """What the server stores: repos, their commits and refs, and the LFS objects."""

    def __init__(self) -> None:
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lfs: dict[str, bytes] = {}
        self.lock = threading.RLock()
        self.log: list[dict] = []
        self.failures: list[dict] = []  # {"method", "pattern", "status", "times", "after", "stall"}
        self.closing = threading.Event()  # set when the server stops: a stalled request may end

    def repo(self, repo_type: str, repo_id: str) -> Repo:
        repo = self.repos.get((repo_type, repo_id))
        if repo is None:
            raise HubError(404, f"Repository Not Found for url: {repo_type}s/{repo_id}.", "RepoNotFound")
        return repo

    def commit_at(self, repo: Repo, revision: str) -> Commit:
        commit = repo.resolve(revision)
        if commit is None:
            raise HubError(404, f"Invalid rev id: {unquote(revision)}", "RevisionNotFound")
        return commit


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


def _tree_entries(files: dict[str, Blob], base: str, recursive: bool) -> list[dict]:
    """Files and folders under ``base`` (one level, or all levels when recursive), folders first like the Hub."""
    base = base.strip("/")
    prefix = f"{base}/" if base else ""
    folders: dict[str, None] = {}
    out_files = []
    for path in sorted(files):
        if not path.startswith(prefix):
            continue
        rest = path[len(prefix):]
        parts = rest.split("/")
        for depth in range(1, len(parts)):
            if depth > 1 and not recursive:
                break
            folders[prefix + "/".join(parts[:depth])] = None
        if recursive or len(parts) == 1:
            out_files.append(files[path].as_entry(path))
    dirs = [{"type": "directory", "path": d, "size": 0, "oid": hashlib.sha1(d.encode()).hexdigest()} for d in folders]
    return dirs + out_files


class _Handler(BaseHTTPRequestHandler):
    server_version = "loopback-hub/1.0"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args) -> None:
        pass

    @property
    def state(self) -> HubState:
        return self.server.state  # type: ignore[attr-defined]

    # --- plumbing -------------------------------------------------------------------------------------------
    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            return self.rfile.read(length)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        return b""

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None, head: bool = False) -> None:
        self.send_response(status)
        headers = dict(headers or {})
        headers.setdefault("Content-Type", "application/json")
        if "Content-Length" not in headers:
            headers["Content-Length"] = str(len(body))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if not head and body:
            self.wfile.write(body)

    def _json(self, obj: object, status: int = 200) -> None:
        self._send(status, json.dumps(obj).encode())

    def _error(self, err: HubError, head: bool = False) -> None:
        headers = {"X-Error-Message": err.message}
        if err.code:
            headers["X-Error-Code"] = err.code
        self._send(err.status, json.dumps({"error": err.message}).encode(), headers, head=head)

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        path, query = url.path, parse_qs(url.query)
        self.state.log.append({"method": method, "path": path, "auth": "Authorization" in self.headers})
        body = self._body() if method in ("POST", "PUT") else b""
        lose_response = stall = False
        with self.state.lock:
            for rule in self.state.failures:
                if rule["times"] > 0 and rule["method"] == method and re.search(rule["pattern"], path):
                    rule["times"] -= 1
                    stall = rule["stall"]
                    if not rule["after"] and not stall:
                        return self._error(HubError(rule["status"], "injected failure"), head=method == "HEAD")
                    lose_response = rule["status"]
                    break
        if stall:  # the connection stays open and nothing ever comes back (until the server stops)
            self.state.closing.wait()
            self.close_connection = True
            return
        if lose_response:  # the request takes effect but its answer is lost: the client sees an error
            real_wfile, self.wfile = self.wfile, io.BytesIO()
            try:
                self._route(method, path, query, body)
            finally:
                self.wfile = real_wfile
            self.close_connection = True
            return self._error(HubError(lose_response, "injected failure after the request took effect"))
        self._route(method, path, query, body)

    def _route(self, method: str, path: str, query: dict, body: bytes) -> None:
        try:
            for route_method, pattern, handler in ROUTES:
                if route_method == method or (route_method == "GET" and method == "HEAD"):
                    m = re.fullmatch(pattern, path)
                    if m:
                        return handler(self, m, query, body, method == "HEAD")
            raise HubError(404, f"no such route: {method} {path}")
        except HubError as err:
            self._error(err, head=method == "HEAD")

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    @property
    def base_url(self) -> str:
        return self.server.url  # type: ignore[attr-defined]

    # --- routes ---------------------------------------------------------------------------------------------
    def create_repo(self, m, query, body, head):
        payload = json.loads(body or b"{}")
        repo_type = payload.get("type") or "model"
        repo_id = f"{payload['organization']}/{payload['name']}" if payload.get("organization") else payload["name"]
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        url = f"{self.base_url}/{prefix}{repo_id}"
        with self.state.lock:
            if (repo_type, repo_id) in self.state.repos:  # the Hub's 409 carries the url too
                return self._send(409, json.dumps({"error": "You already created this repo", "url": url}).encode())
            repo = Repo(repo_type, repo_id)
            oid = hashlib.sha1(f"init {repo_type} {repo_id}".encode()).hexdigest()
            init_files = {".gitattributes": _blob(b"*.parquet filter=lfs diff=lfs merge=lfs -text\n")}
            repo.commits[oid] = Commit(oid, None, "initial commit", init_files, _now())
            repo.branches["main"] = oid
            self.state.repos[(repo_type, repo_id)] = repo
        self._json({"url": url, "name": repo_id, "id": repo_id})

    def validate_yaml(self, m, query, body, head):
        payload = json.loads(body or b"{}")
        errors = card_metadata_errors(payload.get("content", ""), payload.get("repoType") or "model")
        if errors:  # the Hub's shape: HfApi lists errors[].message, RepoCard.validate shows the text
            return self._json({"errors": [{"message": e} for e in errors], "warnings": []}, status=400)
        self._json({"errors": [], "warnings": []})

    def preupload(self, m, query, body, head):
        repo = self.state.repo(m["type"], m["repo"])
        commit = self.state.commit_at(repo, m["rev"])
        files = []
        for f in json.loads(body)["files"]:
            lfs = f["path"].endswith(LFS_SUFFIXES) or f["size"] >= LFS_MIN_SIZE
            remote = commit.files.get(f["path"])
            # Like the Hub: the remote oid of an LFS file is its sha256, of a regular file its git blob id.
            remote_oid = (remote.sha256 or remote.oid) if remote else None
            files.append({"path": f["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False,
                          "oid": remote_oid})
        self._json({"files": files, "commitOid": commit.oid})

    def lfs_batch(self, m, query, body, head):
        prefix = m["prefix"] or ""
        repo_type = {"datasets/": "dataset", "spaces/": "space"}.get(prefix, "model")
        self.state.repo(repo_type, m["repo"])
        objects = []
        for obj in json.loads(body)["objects"]:
            entry = {"oid": obj["oid"], "size": obj["size"]}
            if obj["oid"] not in self.state.lfs:
                entry["actions"] = {
                    "upload": {"href": f"{self.base_url}/lfs-upload/{obj['oid']}/{obj['size']}"},
                    "verify": {"href": f"{self.base_url}/lfs-verify"},
                }
            objects.append(entry)
        self._send(200, json.dumps({"transfer": "basic", "objects": objects}).encode(),
                   {"Content-Type": "application/vnd.git-lfs+json"})

    def lfs_upload(self, m, query, body, head):
        if hashlib.sha256(body).hexdigest() != m["oid"] or len(body) != int(m["size"]):
            raise HubError(400, "uploaded content does not match its sha256 / size")
        with self.state.lock:
            self.state.lfs[m["oid"]] = body
        self._send(200)

    def lfs_verify(self, m, query, body, head):
        payload = json.loads(body)
        if len(self.state.lfs.get(payload["oid"], b"")) != payload["size"] or payload["oid"] not in self.state.lfs:
            raise HubError(404, f"LFS object {payload['oid']} not found")
        self._json({"success": True})

    def commit(self, m, query, body, head):
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        with self.state.lock:
            repo = self.state.repo(m["type"], m["repo"])
            branch = unquote(m["rev"])
            if branch not in repo.branches:
                raise HubError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
            parent = repo.commits[repo.branches[branch]]
            files = dict(parent.files)
            header = {}
            for item in lines:
                key, value = item["key"], item["value"]
                if key == "header":
                    header = value
                    if value.get("parentCommit") and value["parentCommit"] != parent.oid:
                        raise HubError(412, "A commit has happened since. Please refresh and try again.")
                elif key == "file":
                    files[value["path"]] = _blob(base64.b64decode(value["content"]))
                elif key == "lfsFile":
                    data = self.state.lfs.get(value["oid"])
                    if data is None:
                        raise HubError(422, f"LFS object {value['oid']} for {value['path']} was never uploaded")
                    files[value["path"]] = _lfs_blob(value["oid"], len(data))
                elif key == "deletedFile":
                    if files.pop(value["path"], None) is None:
                        raise HubError(404, "A file with this name doesn't exist", "EntryNotFound")
                elif key == "deletedFolder":
                    folder = value["path"].rstrip("/") + "/"
                    for p in [p for p in files if p.startswith(folder)]:
                        del files[p]
                else:
                    raise HubError(400, f"unknown commit operation {key!r}")
            title = header.get("summary", "")
            oid = hashlib.sha1(json.dumps([parent.oid, title, sorted((p, b.oid) for p, b in files.items()),
                                           len(repo.commits)]).encode()).hexdigest()
            repo.commits[oid] = Commit(oid, parent.oid, title, files, _now())
            repo.branches[branch] = oid
        prefix = "" if repo.repo_type == "model" else f"{repo.repo_type}s/"
        self._json({"success": True, "commitOid": oid, "commitUrl": f"{self.base_url}/{prefix}{repo.repo_id}/commit/{oid}",
                    "pullRequestUrl": None})

    def create_tag(self, m, query, body, head):
        payload = json.loads(body)
        with self.state.lock:
            repo = self.state.repo(m["type"], m["repo"])
            commit = self.state.commit_at(repo, m["rev"])
            tag = payload["tag"]
            if tag in repo.tags or tag in repo.branches:
                raise HubError(409, f"Tag '{tag}' already exists")
            repo.tags[tag] = commit.oid
        self._json({"success": True})

    def refs(self, m, query, body, head):
        repo = self.state.repo(m["type"], m["repo"])
        as_refs = lambda kind, table: [
            {"name": n, "ref": f"refs/{kind}/{n}", "targetCommit": oid} for n, oid in sorted(table.items())
        ]
        self._json({"branches": as_refs("heads", repo.branches), "tags": as_refs("tags", repo.tags), "converts": []})

    def info(self, m, query, body, head):
        repo = self.state.repo(m["type"], m["repo"])
        commit = self.state.commit_at(repo, m["rev"] or "main")
        card = {}
        readme = commit.files.get("README.md")
        if readme is not None and readme.content and readme.content.startswith(b"---"):
            try:
                card = yaml.safe_load(readme.content.decode().split("---", 2)[1]) or {}
            except yaml.YAMLError:
                card = {}
        siblings = []
        for path, blob in sorted(commit.files.items()):
            s = {"rfilename": path, "size": blob.size, "blobId": blob.oid}
            if blob.sha256:
                s["lfs"] = {"sha256": blob.sha256, "size": blob.size, "pointerSize": len(lfs_pointer(blob.sha256, blob.size))}
            siblings.append(s)
        self._json({
            "_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24], "id": repo.repo_id,
            "author": repo.repo_id.split("/")[0], "sha": commit.oid, "lastModified": commit.date,
            "createdAt": commit.date, "private": False, "gated": False, "disabled": False, "downloads": 0,
            "likes": 0, "tags": [], "cardData": card, "siblings": siblings, "usedStorage": 0,
        })

    def tree(self, m, query, body, head):
        repo = self.state.repo(m["type"], m["repo"])
        commit = self.state.commit_at(repo, m["rev"])
        base = unquote(m["path"] or "")
        recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
        if base and base not in commit.files and not any(p.startswith(base.rstrip("/") + "/") for p in commit.files):
            raise HubError(404, f"{base} does not exist at {commit.oid}", "EntryNotFound")
        entries = _tree_entries(commit.files, base, recursive)
        if query.get("expand", ["false"])[0].lower() in ("1", "true"):
            for e in entries:
                e["lastCommit"] = {"id": commit.oid, "title": commit.title, "date": commit.date}
        self._json(entries)

    def paths_info(self, m, query, body, head):
        repo = self.state.repo(m["type"], m["repo"])
        commit = self.state.commit_at(repo, m["rev"])
        ctype = self.headers.get("Content-Type", "")
        payload = json.loads(body) if "json" in ctype else {k: v for k, v in parse_qs(body.decode()).items()}
        paths = payload.get("paths", [])
        paths = [paths] if isinstance(paths, str) else paths
        out = []
        for p in paths:
            p = p.strip("/")
            if p in commit.files:
                out.append(commit.files[p].as_entry(p))
            elif any(f.startswith(p + "/") for f in commit.files) or p == "":
                out.append({"type": "directory", "path": p, "size": 0, "oid": hashlib.sha1(p.encode()).hexdigest()})
        self._json(out)

    def commits(self, m, query, body, head):
        repo = self.state.repo(m["type"], m["repo"])
        commit = self.state.commit_at(repo, m["rev"])
        out = []
        while commit is not None:
            out.append({"id": commit.oid, "title": commit.title, "message": "", "date": commit.date,
                        "authors": [{"user": "loopback"}]})
            commit = repo.commits.get(commit.parent) if commit.parent else None
        self._json(out)

    def resolve(self, m, query, body, head):
        prefix = m["prefix"] or ""
        repo_type = {"datasets/": "dataset", "spaces/": "space"}.get(prefix, "model")
        repo = self.state.repo(repo_type, m["repo"])
        commit = self.state.commit_at(repo, m["rev"])
        path = unquote(m["path"])
        blob = commit.files.get(path)
        if blob is None:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound")
        data = blob.content if blob.content is not None else self.state.lfs[blob.sha256]
        headers = {"Content-Type": "application/octet-stream", "X-Repo-Commit": commit.oid, "Accept-Ranges": "bytes",
                   "ETag": f'"{blob.oid}"'}
        if blob.sha256:
            headers["X-Linked-Etag"] = f'"{blob.sha256}"'
            headers["X-Linked-Size"] = str(blob.size)
        status = 200
        rng = self.headers.get("Range")
        if rng and (r := re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip())):
            start = int(r[1]) if r[1] else max(0, len(data) - int(r[2]))
            end = int(r[2]) if r[1] and r[2] else len(data) - 1
            end = min(end, len(data) - 1)
            if start >= len(data) and len(data):
                return self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"}, head=head)
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            data, status = data[start:end + 1], 206
        self._send(status, data, headers, head=head)


def _blob(content: bytes) -> Blob:
    return Blob(size=len(content), oid=git_blob_oid(content), content=content)


def _lfs_blob(sha256: str, size: int) -> Blob:
    return Blob(size=size, oid=git_blob_oid(lfs_pointer(sha256, size)), sha256=sha256)


_REPO = r"(?P<repo>[^/]+/[^/]+)"
_TYPE = r"(?P<type>model|dataset|space)s"
_REV = r"(?P<rev>[^/]+)"
ROUTES = [
    ("POST", r"/api/repos/create", _Handler.create_repo),
    ("POST", r"/api/validate-yaml", _Handler.validate_yaml),
    ("POST", rf"/api/{_TYPE}/{_REPO}/preupload/{_REV}", _Handler.preupload),
    ("POST", rf"/(?P<prefix>datasets/|spaces/)?{_REPO}\.git/info/lfs/objects/batch", _Handler.lfs_batch),
    ("PUT", r"/lfs-upload/(?P<oid>[0-9a-f]{64})/(?P<size>\d+)", _Handler.lfs_upload),
    ("POST", r"/lfs-verify", _Handler.lfs_verify),
    ("POST", rf"/api/{_TYPE}/{_REPO}/commit/{_REV}", _Handler.commit),
    ("POST", rf"/api/{_TYPE}/{_REPO}/tag/{_REV}", _Handler.create_tag),
    ("GET", rf"/api/{_TYPE}/{_REPO}/refs", _Handler.refs),
    ("GET", rf"/api/{_TYPE}/{_REPO}(?:/revision/{_REV})?", _Handler.info),
    ("GET", rf"/api/{_TYPE}/{_REPO}/tree/{_REV}(?:/(?P<path>.*))?", _Handler.tree),
    ("POST", rf"/api/{_TYPE}/{_REPO}/paths-info/{_REV}", _Handler.paths_info),
    ("GET", rf"/api/{_TYPE}/{_REPO}/commits/{_REV}", _Handler.commits),
    ("GET", rf"/(?P<prefix>datasets/|spaces/)?{_REPO}/resolve/{_REV}/(?P<path>.+)", _Handler.resolve),
]


class HubServer:
    """The loopback Hub: ``with HubServer() as hub: ... hub.url``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = HubState()
        self._httpd = ThreadingHTTPServer((host, port), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.state = self.state  # type: ignore[attr-defined]
        self.url = f"http://{host}:{self._httpd.server_address[1]}"
        self._httpd.url = self.url  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.state.closing.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def fail(self, method: str, pattern: str, times: int = 1, status: int = 500, after: bool = False,
             stall: bool = False) -> None:
        """Answer the next ``times`` requests of ``method`` whose path matches ``pattern`` with ``status``.

        With ``after=True`` the request is carried out first and only its answer is replaced by the error (a
        response lost on the way back, the case where a blind retry would commit twice). With ``stall=True`` the
        request is never answered: a Hub that accepts the connection and goes silent.
        """
        with self.state.lock:
            self.state.failures.append(
                {"method": method, "pattern": pattern, "times": times, "status": status, "after": after, "stall": stall}
            )

    def clear_failures(self) -> None:
        with self.state.lock:
            self.state.failures.clear()

    def repo(self, repo_type: str, repo_id: str) -> Repo:
        return self.state.repo(repo_type, repo_id)


if __name__ == "__main__":  # python tests/publish/hub_server.py: serve until interrupted (manual checks)
    import sys

    server = HubServer(port=int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    with server:
        print(server.url, flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
