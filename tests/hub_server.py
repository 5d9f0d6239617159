"""A small Hugging Face Hub look-alike for the test suite (standard library only).

It speaks the part of the Hub HTTP API that ``huggingface_hub`` (with Xet
disabled) and ``datasets`` use to create repos, upload regular and LFS files,
list trees and download files, so tests can drive the real clients end to end
with no network access.

State (repos, commits, refs) lives in memory; file contents live in a temporary
directory, addressed by sha256.  Each commit keeps a full snapshot
(path -> blob), so every past commit sha stays resolvable, like on the Hub.

Typical use::

    server = HubServer(token="hf_dummy")   # binds a free 127.0.0.1 port now
    os.environ["HF_ENDPOINT"] = server.url  # before huggingface_hub is imported
    server.start()
    ...
    server.stop()
"""

from __future__ import annotations

import atexit
import base64
import hashlib
import itertools
import json
import os
import re
import shutil
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from fnmatch import fnmatch
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_USER = "test-user"
DEFAULT_BRANCH = "main"

# Files at least this big are stored with LFS even if they look like text.
# (The real Hub uses 10 MB; a small threshold keeps LFS tests fast.)
DEFAULT_LFS_THRESHOLD = 10 * 1024

# Every repo starts with an "initial commit" holding this file, like on the Hub.
# Its `filter=lfs` patterns also drive the preupload lfs/regular decision.
DEFAULT_GITATTRIBUTES = "".join(
    f"{pattern} filter=lfs diff=lfs merge=lfs -text\n"
    for pattern in (
        "*.arrow", "*.bin", "*.ckpt", "*.gz", "*.h5", "*.joblib", "*.msgpack", "*.npy", "*.npz",
        "*.onnx", "*.parquet", "*.pickle", "*.pkl", "*.pt", "*.pth", "*.safetensors", "*.tar",
        "*.zip", "*.zst", "*tfevents*",
    )
)

LFS_POINTER_TEMPLATE = "version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n"

# Variables that would override the cache locations derived from HF_HOME.
HF_PATH_ENV_VARS = (
    "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_ASSETS_CACHE", "HUGGINGFACE_ASSETS_CACHE",
    "HF_DATASETS_CACHE", "HF_XET_CACHE", "HF_TOKEN_PATH",
)

_URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_API_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}  # /api/{models,...}/<id>
_PREFIX_TYPES = {"": "model", "datasets": "dataset", "spaces": "space"}  # /[datasets/]<id>/resolve/...
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_COMMIT_RE = re.compile(r"[0-9a-f]{7,40}")
_RANGE_RE = re.compile(r"bytes=(\d*)-(\d*)")


# --------------------------------------------------------------------------- data model


def git_blob_sha1(data: bytes) -> str:
    """Git object id of a blob (what `git hash-object` prints)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True)
class Blob:
    """One file version. `oid` is the git blob id (of the LFS pointer for LFS files)."""

    sha256: str
    size: int
    lfs: bool
    oid: str

    @property
    def pointer(self) -> bytes:
        return LFS_POINTER_TEMPLATE.format(oid=self.sha256, size=self.size).encode()

    @property
    def etag(self) -> str:
        # Same rule as the Hub: sha256 for LFS files, git blob sha1 otherwise.
        return self.sha256 if self.lfs else self.oid


@dataclass
class Commit:
    oid: str
    title: str
    message: str
    date: str
    parent: str | None
    files: dict[str, Blob]  # full snapshot, not a diff


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    created_at: str
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)  # name -> commit oid
    tags: dict[str, str] = field(default_factory=dict)
    pulls: dict[int, str] = field(default_factory=dict)  # PR number -> commit oid

    def resolve(self, rev: str) -> Commit | None:
        """Branch, tag, `refs/pr/N`, full commit sha or unique sha prefix -> commit."""
        for refs in (self.branches, self.tags):
            if rev in refs:
                return self.commits[refs[rev]]
        if m := re.fullmatch(r"refs/pr/(\d+)", rev):
            oid = self.pulls.get(int(m.group(1)))
            return self.commits[oid] if oid else None
        if _COMMIT_RE.fullmatch(rev):
            matches = [oid for oid in self.commits if oid.startswith(rev)]
            if len(matches) == 1:
                return self.commits[matches[0]]
        return None

    def history(self, commit: Commit):
        """Yield `commit` and its ancestors, newest first."""
        current: Commit | None = commit
        while current is not None:
            yield current
            current = self.commits.get(current.parent) if current.parent else None


class ObjectStore:
    """Content-addressed store (sha256 -> bytes) in a directory."""

    def __init__(self, root: str):
        self.root = root
        os.makedirs(root, exist_ok=True)

    def _path(self, sha256: str) -> str:
        return os.path.join(self.root, sha256)

    def put(self, data: bytes) -> str:
        sha256 = hashlib.sha256(data).hexdigest()
        path = self._path(sha256)
        if not os.path.exists(path):
            tmp = f"{path}.{threading.get_ident()}.tmp"
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)  # atomic: readers never see a partial object
        return sha256

    def size(self, sha256: str) -> int | None:
        try:
            return os.path.getsize(self._path(sha256))
        except OSError:
            return None

    def read(self, sha256: str, start: int = 0, end: int | None = None) -> bytes:
        """Bytes [start, end) of an object (end=None: to the end)."""
        with open(self._path(sha256), "rb") as f:
            f.seek(start)
            return f.read() if end is None else f.read(end - start)


# --------------------------------------------------------------------------- HTTP plumbing


@dataclass
class Request:
    method: str
    path: str  # raw (still percent-encoded) path, without query
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def param(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def flag(self, name: str) -> bool:
        return (self.param(name) or "").lower() in ("1", "true", "yes")

    def json(self):
        return json.loads(self.body or b"{}")


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, obj, status: int = 200, headers: dict[str, str] | None = None) -> "Response":
        return cls(status, json.dumps(obj).encode(), {"Content-Type": "application/json", **(headers or {})})


class HubError(Exception):
    """An HTTP error in the Hub's format: JSON body + X-Error-Code/X-Error-Message headers."""

    def __init__(
        self, status: int, message: str, code: str | None = None, headers: dict | None = None, extra: dict | None = None
    ):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code
        self.headers, self.extra = headers or {}, extra or {}

    def response(self) -> Response:
        headers = {"X-Error-Message": self.message.encode("ascii", "replace").decode(), **self.headers}
        if self.code:
            headers["X-Error-Code"] = self.code
        return Response.json({"error": self.message, **self.extra}, self.status, headers)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True  # idle keep-alive connections must not block shutdown

    def __init__(self, address, hub: "HubServer"):
        self.hub = hub
        super().__init__(address, _Handler, bind_and_activate=False)

    def server_bind(self):
        # Skip HTTPServer.server_bind's reverse DNS lookup (getfqdn): no network here.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the client pools connections
    server_version = "seqrl-test-hub/1.0"
    timeout = 60  # idle keep-alive connections end eventually

    def log_message(self, format, *args):  # noqa: A002 - keep test output quiet
        pass

    def setup(self):
        super().setup()
        self.server.hub._connections.add(self.connection)

    def finish(self):
        self.server.hub._connections.discard(self.connection)
        super().finish()

    def do_GET(self):
        self._handle("GET")

    def do_HEAD(self):
        self._handle("HEAD")

    def do_POST(self):
        self._handle("POST")

    def do_PUT(self):
        self._handle("PUT")

    def do_DELETE(self):
        self._handle("DELETE")

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # skip trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()  # CRLF after each chunk
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self, method: str):
        split = urlsplit(self.path)
        request = Request(
            method=method,
            path=split.path,
            query=parse_qs(split.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=self._read_body(),
        )
        response = self.server.hub.handle(request)
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if "Content-Length" not in response.headers:
            self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(response.body)


# --------------------------------------------------------------------------- the Hub


_T = r"(?P<api_type>models|datasets|spaces)"
_R = r"(?P<repo_id>[^/]+/[^/]+)"
_P = r"(?:(?P<prefix>datasets|spaces)/)?"  # URL prefix of non-model repos outside /api

# (method, path regex, handler name), matched with re.fullmatch on the raw path.
# HEAD is served by the GET handler (the body is dropped when sending).
_ROUTES = [
    ("GET", r"/api/whoami-v2", "_whoami"),
    ("GET", r"/api/agent-harnesses", "_agent_harnesses"),
    ("POST", r"/api/validate-yaml", "_validate_yaml"),
    ("POST", r"/api/repos/create", "_create_repo"),
    ("GET", r"/api/(?P<api_type>models|datasets|spaces)", "_list_repos"),
    ("DELETE", r"/api/repos/delete", "_delete_repo"),
    ("GET", rf"/api/{_T}/{_R}(?:/revision/(?P<rev>[^/]+))?", "_repo_info"),
    ("GET", rf"/api/{_T}/{_R}/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?", "_tree"),
    ("POST", rf"/api/{_T}/{_R}/paths-info/(?P<rev>[^/]+)", "_paths_info"),
    ("GET", rf"/api/{_T}/{_R}/refs", "_refs"),
    ("GET", rf"/api/{_T}/{_R}/commits/(?P<rev>[^/]+)", "_commits"),
    ("POST", rf"/api/{_T}/{_R}/preupload/(?P<rev>[^/]+)", "_preupload"),
    ("POST", rf"/api/{_T}/{_R}/commit/(?P<rev>[^/]+)", "_commit"),
    ("POST", rf"/api/{_T}/{_R}/branch/(?P<name>[^/]+)", "_create_branch"),
    ("DELETE", rf"/api/{_T}/{_R}/branch/(?P<name>[^/]+)", "_delete_branch"),
    ("POST", rf"/api/{_T}/{_R}/tag/(?P<rev>[^/]+)", "_create_tag"),
    ("DELETE", rf"/api/{_T}/{_R}/tag/(?P<name>[^/]+)", "_delete_tag"),
    ("POST", rf"/{_P}{_R}\.git/info/lfs/objects/batch", "_lfs_batch"),
    ("PUT", r"/_lfs/(?P<oid>[0-9a-f]{64})", "_lfs_put"),
    ("POST", r"/_lfs/(?P<oid>[0-9a-f]{64})/verify", "_lfs_verify"),
    ("GET", r"/_lfs/(?P<oid>[0-9a-f]{64})", "_lfs_get"),
    ("GET", rf"/{_P}{_R}/resolve/(?P<rev>[^/]+)/(?P<path>.+)", "_resolve"),
]
_COMPILED_ROUTES = [(method, re.compile(regex), name) for method, regex, name in _ROUTES]


class HubServer:
    """In-process fake Hub. Binds its port on construction; serves between `start()` and `stop()`.

    Args:
        host, port: address to bind (port 0 = pick a free port).
        token: if set, write endpoints (and reads of private repos) require
            `Authorization: Bearer <token>`, so tests prove the client sends it.
        lfs_threshold: files of at least this many bytes go through LFS.

    Attributes useful in tests:
        url: base URL, e.g. ``http://127.0.0.1:43123`` (use as HF_ENDPOINT).
        requests: list of ``(method, path, status)`` seen so far.
        errors: tracebacks of unexpected server errors (should stay empty).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        token: str | None = None,
        lfs_threshold: int = DEFAULT_LFS_THRESHOLD,
    ):
        self.token = token
        self.lfs_threshold = lfs_threshold
        self.requests: list[tuple[str, str, int]] = []
        self.errors: list[str] = []
        self._lock = threading.RLock()
        self._repos: dict[tuple[str, str], Repo] = {}
        self._pending_lfs: dict[str, int] = {}  # announced by the batch API: oid -> size
        self._counter = itertools.count()
        self._connections: set[socket.socket] = set()
        self._thread: threading.Thread | None = None
        self._storage_dir: str | None = None
        self._store: ObjectStore | None = None
        # Bind now (reserving the port) but only listen in start(): until then
        # clients get "connection refused" instead of hanging.
        self._httpd = _HTTPServer((host, port), self)
        self._httpd.server_bind()

    # ----------------------------------------------------------------- lifecycle

    @property
    def host(self) -> str:
        return self._httpd.server_address[0]

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> "HubServer":
        if self._thread is not None:
            return self
        if self._httpd.socket.fileno() == -1:
            raise RuntimeError("a stopped HubServer cannot be restarted; create a new one")
        self._storage_dir = tempfile.mkdtemp(prefix="seqrl-test-hub-")
        self._store = ObjectStore(os.path.join(self._storage_dir, "objects"))
        self._httpd.server_activate()
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="test-hub", daemon=True)
        self._thread.start()
        atexit.register(self.stop)  # don't leak the storage dir if the owner never calls stop()
        return self

    def stop(self) -> None:
        """Stop serving, drop open keep-alive connections, delete stored files. Idempotent."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._httpd.server_close()
        for conn in list(self._connections):
            try:
                conn.shutdown(socket.SHUT_RDWR)  # wakes handler threads blocked on idle connections
            except OSError:
                pass
        if self._storage_dir is not None:
            shutil.rmtree(self._storage_dir, ignore_errors=True)
            self._storage_dir = None
        atexit.unregister(self.stop)

    def __enter__(self) -> "HubServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ----------------------------------------------------------------- inspection helpers for tests

    def repo_files(self, repo_id: str, repo_type: str = "model", revision: str = DEFAULT_BRANCH) -> dict[str, Blob]:
        """Snapshot of a repo at `revision` (path -> Blob), read directly from server state."""
        with self._lock:
            repo = self._repos[(repo_type, repo_id)]
            commit = repo.resolve(revision)
            if commit is None:
                raise KeyError(revision)
            return dict(commit.files)

    def read_file(self, repo_id: str, path: str, repo_type: str = "model", revision: str = DEFAULT_BRANCH) -> bytes:
        """Content of one file at `revision`, read directly from server state."""
        return self._store.read(self.repo_files(repo_id, repo_type, revision)[path].sha256)

    def commit_shas(self, repo_id: str, repo_type: str = "model", revision: str = DEFAULT_BRANCH) -> list[str]:
        """Commit oids reachable from `revision`, newest first."""
        with self._lock:
            repo = self._repos[(repo_type, repo_id)]
            return [c.oid for c in repo.history(repo.resolve(revision))]

    # ----------------------------------------------------------------- dispatch

    def handle(self, request: Request) -> Response:
        try:
            response = self._route(request)
        except HubError as err:
            response = err.response()
        except Exception:  # a bug in this server: report it loudly to the tests
            self.errors.append(traceback.format_exc())
            response = HubError(500, "internal error in the test hub").response()
        with self._lock:
            self.requests.append((request.method, request.path, response.status))
        return response

    def _route(self, request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        for route_method, regex, name in _COMPILED_ROUTES:
            match = regex.fullmatch(request.path) if route_method == method else None
            if match:
                args = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
                return getattr(self, name)(request, **args)
        raise HubError(404, f"No route for {request.method} {request.path}")

    # ----------------------------------------------------------------- shared helpers

    def _authorized(self, request: Request) -> bool:
        return self.token is None or request.headers.get("authorization") == f"Bearer {self.token}"

    def _require_auth(self, request: Request) -> None:
        if not self._authorized(request):
            # This exact message makes the client raise a plain HfHubHTTPError (not RepoNotFound).
            raise HubError(401, "Invalid credentials in Authorization header")

    def _repo(self, request: Request, repo_type: str, repo_id: str) -> Repo:
        repo = self._repos.get((repo_type, repo_id))
        if repo is None or (repo.private and not self._authorized(request)):
            raise HubError(404, f"Repository {repo_id} not found", "RepoNotFound")
        return repo

    def _commit_at(self, repo: Repo, rev: str) -> Commit:
        commit = repo.resolve(rev)
        if commit is None:
            raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        return commit

    def _repo_url(self, repo: Repo) -> str:
        return f"{self.url}/{_URL_PREFIX[repo.repo_type]}{repo.repo_id}"

    def _new_commit(
        self, repo: Repo, parent: Commit | None, files: dict[str, Blob], title: str, message: str = ""
    ) -> Commit:
        parent_oid = parent.oid if parent else None
        # Any unique 40-hex id will do: the client only needs it to be stable and distinct.
        seed = f"{repo.repo_type}/{repo.repo_id}|{parent_oid}|{title}|{next(self._counter)}|{time.time()}"
        commit = Commit(hashlib.sha1(seed.encode()).hexdigest(), title, message, _now_iso(), parent_oid, files)
        repo.commits[commit.oid] = commit
        return commit

    def _store_regular(self, data: bytes) -> Blob:
        return Blob(self._store.put(data), len(data), lfs=False, oid=git_blob_sha1(data))

    def _lfs_blob(self, sha256: str, size: int) -> Blob:
        pointer = LFS_POINTER_TEMPLATE.format(oid=sha256, size=size).encode()
        return Blob(sha256, size, lfs=True, oid=git_blob_sha1(pointer))

    def _lfs_patterns(self, commit: Commit) -> list[str]:
        blob = commit.files.get(".gitattributes")
        if blob is None or blob.lfs:
            return []
        text = self._store.read(blob.sha256).decode("utf-8", "replace")
        return [line.split()[0] for line in text.splitlines() if "filter=lfs" in line and line.split()]

    def _goes_to_lfs(self, path: str, size: int, sample: bytes, patterns: list[str]) -> bool:
        """Hub-like rule: LFS if matched by .gitattributes, big, or binary."""
        if size == 0:
            return False
        name = path.rsplit("/", 1)[-1]
        if any(fnmatch(path if "/" in p else name, p) for p in patterns):
            return True
        return size >= self.lfs_threshold or b"\x00" in sample

    # tree entries, shared by /tree and /paths-info

    def _file_entry(self, path: str, blob: Blob) -> dict:
        entry = {"type": "file", "oid": blob.oid, "size": blob.size, "path": path}
        if blob.lfs:
            entry["lfs"] = {"oid": blob.sha256, "size": blob.size, "pointerSize": len(blob.pointer)}
        return entry

    def _folder_entry(self, commit: Commit, folder: str) -> dict:
        prefix = folder + "/"
        listing = "".join(f"{p}:{b.oid}\n" for p, b in sorted(commit.files.items()) if p.startswith(prefix))
        return {"type": "directory", "oid": hashlib.sha1(listing.encode()).hexdigest(), "size": 0, "path": folder}

    def _last_commit(self, repo: Repo, commit: Commit, path: str) -> dict:
        """Newest commit (in `commit`'s history) that changed `path` (a file or a folder)."""

        def state(c: Commit):
            return {p: b.oid for p, b in c.files.items() if p == path or p.startswith(path + "/")}

        last = commit
        for c in repo.history(commit):
            if state(c) != state(commit):
                break
            last = c
        return {"id": last.oid, "title": last.title, "date": last.date}

    def _with_last_commit(self, repo: Repo, commit: Commit, entry: dict, expand: bool) -> dict:
        if expand:
            entry["lastCommit"] = self._last_commit(repo, commit, entry["path"])
        return entry

    # ----------------------------------------------------------------- account / misc endpoints

    def _whoami(self, request: Request) -> Response:
        self._require_auth(request)
        return Response.json({
            "type": "user", "id": "0" * 24, "name": DEFAULT_USER, "fullname": "Test User", "orgs": [],
            "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": "write"}},
        })

    def _agent_harnesses(self, request: Request) -> Response:
        # Fetched by the client when building its user agent; an empty registry means "no agent".
        return Response.json({"standardEnvVars": [], "harnesses": {}})

    def _validate_yaml(self, request: Request) -> Response:
        return Response.json({"errors": [], "warnings": []})

    # ----------------------------------------------------------------- repos

    def _create_repo(self, request: Request) -> Response:
        self._require_auth(request)
        payload = request.json()
        repo_type = payload.get("type") or "model"
        if repo_type not in _URL_PREFIX:
            raise HubError(400, f"Unsupported repo type: {repo_type}")
        repo_id = f"{payload.get('organization') or DEFAULT_USER}/{payload['name']}"
        private = payload.get("visibility") == "private" or bool(payload.get("private"))
        with self._lock:
            if (repo_type, repo_id) in self._repos:
                # create_repo(exist_ok=True) reads "url" from this 409 body.
                url = self._repo_url(self._repos[(repo_type, repo_id)])
                raise HubError(409, f"You already created this {repo_type} repo", extra={"url": url})
            repo = Repo(repo_type, repo_id, private, _now_iso())
            gitattributes = self._store_regular(DEFAULT_GITATTRIBUTES.encode())
            initial = self._new_commit(repo, None, {".gitattributes": gitattributes}, "initial commit")
            repo.branches[DEFAULT_BRANCH] = initial.oid
            self._repos[(repo_type, repo_id)] = repo
        return Response.json({"url": self._repo_url(repo), "name": repo_id, "id": repo_id})

    def _delete_repo(self, request: Request) -> Response:
        self._require_auth(request)
        payload = request.json()
        repo_type = payload.get("type") or "model"
        repo_id = f"{payload.get('organization') or DEFAULT_USER}/{payload['name']}"
        with self._lock:
            self._repo(request, repo_type, repo_id)
            del self._repos[(repo_type, repo_id)]
        return Response.json({})

    def _list_repos(self, request: Request, api_type: str) -> Response:
        """`HfApi.list_models/list_datasets`: public repos (and private ones with the token), filtered like
        the Hub by `author` (the namespace) and `search` (a substring of the id, any case); one page."""
        author, search = request.param("author"), request.query.get("search", [])
        with self._lock:
            repos = [
                repo for (repo_type, repo_id), repo in sorted(self._repos.items())
                if repo_type == _API_TYPES[api_type]
                and (author is None or repo_id.split("/")[0] == author)
                and all(term.lower() in repo_id.lower() for term in search)
                and (not repo.private or self._authorized(request))
            ]
            items = [
                {"_id": hashlib.sha1(r.repo_id.encode()).hexdigest()[:24], "id": r.repo_id,
                 "author": r.repo_id.split("/")[0], "private": r.private, "createdAt": r.created_at,
                 "lastModified": r.resolve(DEFAULT_BRANCH).date, "sha": r.resolve(DEFAULT_BRANCH).oid,
                 "downloads": 0, "likes": 0, "tags": [], "gated": False, "disabled": False}
                for r in repos
            ]
        return Response.json(items)

    def _repo_info(self, request: Request, api_type: str, repo_id: str, rev: str = DEFAULT_BRANCH) -> Response:
        with self._lock:
            repo = self._repo(request, _API_TYPES[api_type], repo_id)
            commit = self._commit_at(repo, rev)
            with_blobs = request.flag("blobs")
            siblings = []
            for path, blob in sorted(commit.files.items()):
                sibling: dict = {"rfilename": path}
                if with_blobs:
                    sibling.update(size=blob.size, blobId=blob.oid)
                    if blob.lfs:
                        sibling["lfs"] = {"size": blob.size, "sha256": blob.sha256, "pointerSize": len(blob.pointer)}
                siblings.append(sibling)
            info = {
                "_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24],
                "id": repo_id,
                "author": repo_id.split("/")[0],
                "sha": commit.oid,
                "lastModified": commit.date,
                "createdAt": repo.created_at,
                "private": repo.private,
                "gated": False,
                "disabled": False,
                "downloads": 0,
                "likes": 0,
                "tags": [],
                "siblings": siblings,
                "usedStorage": sum(b.size for b in commit.files.values()),
            }
        return Response.json(info)

    # ----------------------------------------------------------------- listing

    def _tree(self, request: Request, api_type: str, repo_id: str, rev: str, path: str = "") -> Response:
        recursive, expand = request.flag("recursive"), request.flag("expand")
        with self._lock:
            repo = self._repo(request, _API_TYPES[api_type], repo_id)
            commit = self._commit_at(repo, rev)
            base = path.strip("/")
            prefix = f"{base}/" if base else ""
            if base and not any(p.startswith(prefix) for p in commit.files):
                raise HubError(404, f"{base} does not exist on {rev}", "EntryNotFound")
            entries: dict[str, dict] = {}
            for file_path, blob in sorted(commit.files.items()):
                if not file_path.startswith(prefix):
                    continue
                parts = file_path[len(prefix):].split("/")
                depth = len(parts) if recursive else 1
                for d in range(1, min(len(parts), depth + 1)):  # folders on the way to the file
                    folder = prefix + "/".join(parts[:d])
                    if folder not in entries:
                        entries[folder] = self._folder_entry(commit, folder)
                if recursive or len(parts) == 1:
                    entries[file_path] = self._file_entry(file_path, blob)
            result = [self._with_last_commit(repo, commit, e, expand) for e in entries.values()]
        return Response.json(result)

    def _paths_info(self, request: Request, api_type: str, repo_id: str, rev: str) -> Response:
        # The client sends a form (paths=a&paths=b&expand=false); accept JSON too.
        if request.headers.get("content-type", "").startswith("application/json"):
            payload = request.json()
            paths, expand = payload.get("paths", []), bool(payload.get("expand"))
        else:
            form = parse_qs(request.body.decode(), keep_blank_values=True)
            paths, expand = form.get("paths", []), (form.get("expand", [""])[0].lower() in ("1", "true"))
        with self._lock:
            repo = self._repo(request, _API_TYPES[api_type], repo_id)
            commit = self._commit_at(repo, rev)
            result = []
            for path in (p.strip("/") for p in paths):
                if path in commit.files:
                    entry = self._file_entry(path, commit.files[path])
                elif path and any(p.startswith(path + "/") for p in commit.files):
                    entry = self._folder_entry(commit, path)
                else:
                    continue  # missing paths are silently skipped, like on the Hub
                result.append(self._with_last_commit(repo, commit, entry, expand))
        return Response.json(result)

    def _refs(self, request: Request, api_type: str, repo_id: str) -> Response:
        with self._lock:
            repo = self._repo(request, _API_TYPES[api_type], repo_id)

            def refs(ref_prefix: str, mapping: dict) -> list[dict]:
                return [
                    {"name": name, "ref": f"{ref_prefix}{name}", "targetCommit": oid}
                    for name, oid in sorted(mapping.items())
                ]

            payload = {
                "branches": refs("refs/heads/", repo.branches),
                "converts": [],
                "tags": refs("refs/tags/", repo.tags),
                "pullRequests": refs("", {f"refs/pr/{n}": oid for n, oid in repo.pulls.items()}),
            }
        return Response.json(payload)

    def _commits(self, request: Request, api_type: str, repo_id: str, rev: str) -> Response:
        with self._lock:
            repo = self._repo(request, _API_TYPES[api_type], repo_id)
            history = [
                {"id": c.oid, "title": c.title, "message": c.message, "date": c.date,
                 "authors": [{"user": DEFAULT_USER}]}
                for c in repo.history(self._commit_at(repo, rev))
            ]
        return Response.json(history)

    # ----------------------------------------------------------------- refs

    def _create_branch(self, request: Request, api_type: str, repo_id: str, name: str) -> Response:
        self._require_auth(request)
        start = request.json().get("startingPoint") or DEFAULT_BRANCH
        with self._lock:
            repo = self._repo(request, _API_TYPES[api_type], repo_id)
            if name in repo.branches:
                raise HubError(409, f"Branch {name} already exists")
            repo.branches[name] = self._commit_at(repo, start).oid
        return Response.json({})

    def _delete_branch(self, request: Request, api_type: str, repo_id: str, name: str) -> Response:
        self._require_auth(request)
        with self._lock:
            repo = self._repo(request, _API_TYPES[api_type], repo_id)
            if name not in repo.branches:
                raise HubError(404, f"Branch {name} not found", "RevisionNotFound")
            if name == DEFAULT_BRANCH:
                raise HubError(403, f"Cannot delete the default branch {name}")
            del repo.branches[name]
        return Response.json({})

    def _create_tag(self, request: Request, api_type: str, repo_id: str, rev: str) -> Response:
        self._require_auth(request)
        tag = request.json()["tag"]
        with self._lock:
            repo = self._repo(request, _API_TYPES[api_type], repo_id)
            if tag in repo.tags:
                raise HubError(409, f"Tag {tag} already exists")
            repo.tags[tag] = self._commit_at(repo, rev).oid
        return Response.json({})

    def _delete_tag(self, request: Request, api_type: str, repo_id: str, name: str) -> Response:
        self._require_auth(request)
        with self._lock:
            repo = self._repo(request, _API_TYPES[api_type], repo_id)
            if repo.tags.pop(name, None) is None:
                raise HubError(404, f"Tag {name} not found", "RevisionNotFound")
        return Response.json({})

    # ----------------------------------------------------------------- upload: preupload + commit

    def _preupload(self, request: Request, api_type: str, repo_id: str, rev: str) -> Response:
        self._require_auth(request)
        files = request.json().get("files", [])
        with self._lock:
            repo = self._repo(request, _API_TYPES[api_type], repo_id)
            commit = self._commit_at(repo, rev)
            patterns = self._lfs_patterns(commit)
            result = []
            for f in files:
                sample = base64.b64decode(f.get("sample", ""))
                is_lfs = self._goes_to_lfs(f["path"], int(f["size"]), sample, patterns)
                entry = {"path": f["path"], "uploadMode": "lfs" if is_lfs else "regular", "shouldIgnore": False}
                existing = commit.files.get(f["path"])
                if existing is not None:
                    # The client compares this with its local oid to skip unchanged files.
                    entry["oid"] = existing.sha256 if is_lfs else existing.oid
                result.append(entry)
        return Response.json({"files": result, "commitOid": commit.oid})

    def _commit(self, request: Request, api_type: str, repo_id: str, rev: str) -> Response:
        self._require_auth(request)
        lines = [json.loads(line) for line in request.body.splitlines() if line.strip()]
        header = next((ln["value"] for ln in lines if ln["key"] == "header"), {})
        operations = [ln for ln in lines if ln["key"] != "header"]
        with self._lock:
            repo = self._repo(request, _API_TYPES[api_type], repo_id)
            if rev not in repo.branches and not rev.startswith("refs/pr/"):
                raise HubError(404, f"Invalid rev id: {rev} is not a branch", "RevisionNotFound")
            head = self._commit_at(repo, rev)
            parent_commit = header.get("parentCommit")
            if parent_commit and parent_commit != head.oid:
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
            files = dict(head.files)
            for op in operations:
                self._apply_operation(files, op["key"], op["value"])
            title, message = header.get("summary") or "Commit", header.get("description") or ""
            commit = self._new_commit(repo, head, files, title, message)
            commit_url = f"{self._repo_url(repo)}/commit/{commit.oid}"
            payload = {"success": True, "commitOid": commit.oid, "commitUrl": commit_url}
            if request.flag("create_pr"):
                number = max(repo.pulls, default=0) + 1
                repo.pulls[number] = commit.oid
                payload["pullRequestUrl"] = f"{self._repo_url(repo)}/discussions/{number}"
            elif rev.startswith("refs/pr/"):
                repo.pulls[int(rev.rsplit("/", 1)[1])] = commit.oid
            else:
                repo.branches[rev] = commit.oid
        return Response.json(payload)

    def _apply_operation(self, files: dict[str, Blob], key: str, value: dict) -> None:
        path = value["path"].strip("/")
        if key == "file":
            content = value["content"]
            data = base64.b64decode(content) if value.get("encoding") == "base64" else content.encode()
            files[path] = self._store_regular(data)
        elif key == "lfsFile":
            oid = value["oid"]
            size = self._store.size(oid) if _SHA256_RE.fullmatch(oid) else None
            if size is None or ("size" in value and value["size"] != size):
                raise HubError(422, f"LFS object {oid} for {path} was not uploaded (or has the wrong size)")
            files[path] = self._lfs_blob(oid, size)
        elif key == "deletedFile":
            if files.pop(path, None) is None:
                raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
        elif key == "deletedFolder":
            doomed = [p for p in files if p.startswith(path + "/")]
            if not doomed:
                raise HubError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
            for p in doomed:
                del files[p]
        else:
            raise HubError(400, f"Unsupported commit operation: {key}")

    # ----------------------------------------------------------------- LFS

    def _lfs_batch(self, request: Request, repo_id: str, prefix: str = "") -> Response:
        repo_type = _PREFIX_TYPES[prefix]
        payload = request.json()
        operation = payload.get("operation")
        if operation == "upload":
            self._require_auth(request)
        with self._lock:
            self._repo(request, repo_type, repo_id)
            objects = [self._lfs_batch_object(operation, obj) for obj in payload.get("objects", [])]
        return Response.json(
            {"transfer": "basic", "objects": objects, "hash_algo": "sha256"},
            headers={"Content-Type": "application/vnd.git-lfs+json"},
        )

    def _lfs_batch_object(self, operation: str, obj: dict) -> dict:
        oid, size = obj.get("oid", ""), obj.get("size")
        answer = {"oid": oid, "size": size}
        if not _SHA256_RE.fullmatch(oid) or not isinstance(size, int) or size < 0:
            error = {"code": 422, "message": "Invalid oid or size"}
            return {"oid": str(oid), "size": size if isinstance(size, int) else 0, "error": error}
        stored = self._store.size(oid)
        href = f"{self.url}/_lfs/{oid}"
        if operation == "download":
            if stored is None:
                return {**answer, "error": {"code": 404, "message": "Object does not exist"}}
            return {**answer, "authenticated": True, "actions": {"download": {"href": href}}}
        if stored == size:
            return answer  # already uploaded: no actions, the client skips it
        self._pending_lfs[oid] = size
        return {
            **answer,
            "authenticated": True,
            "actions": {"upload": {"href": href}, "verify": {"href": f"{href}/verify"}},
        }

    def _lfs_put(self, request: Request, oid: str) -> Response:
        # Stands in for the presigned storage URL: the client sends no auth header here.
        data = request.body
        with self._lock:
            expected = self._pending_lfs.get(oid)
        if hashlib.sha256(data).hexdigest() != oid or (expected is not None and expected != len(data)):
            raise HubError(400, f"Uploaded content does not match LFS object {oid}")
        self._store.put(data)
        with self._lock:
            self._pending_lfs.pop(oid, None)
        return Response(200, headers={"ETag": f'"{hashlib.md5(data).hexdigest()}"'})

    def _lfs_verify(self, request: Request, oid: str) -> Response:
        self._require_auth(request)
        payload = request.json()
        if payload.get("oid") != oid or self._store.size(oid) != payload.get("size"):
            raise HubError(404, f"LFS object {oid} not found or wrong size")
        return Response.json({})

    def _lfs_get(self, request: Request, oid: str) -> Response:
        if self._store.size(oid) is None:
            raise HubError(404, f"LFS object {oid} not found")
        return Response(200, self._store.read(oid), {"Content-Type": "application/octet-stream"})

    # ----------------------------------------------------------------- download

    def _resolve(self, request: Request, repo_id: str, rev: str, path: str, prefix: str = "") -> Response:
        repo_type = _PREFIX_TYPES[prefix]
        with self._lock:
            repo = self._repo(request, repo_type, repo_id)
            commit = self._commit_at(repo, rev)
            blob = commit.files.get(path)
        if blob is None:
            # X-Repo-Commit lets the client cache the file's absence for this commit.
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound", headers={"X-Repo-Commit": commit.oid})
        headers = {
            "Content-Type": "application/octet-stream",
            "ETag": f'"{blob.etag}"',
            "X-Repo-Commit": commit.oid,
            "Accept-Ranges": "bytes",
            "Content-Disposition": f'inline; filename="{path.rsplit("/", 1)[-1]}"',
        }
        if blob.lfs:
            headers.update({"X-Linked-Etag": f'"{blob.sha256}"', "X-Linked-Size": str(blob.size)})
        span = self._byte_range(request.headers.get("range"), blob.size)
        if span is None:
            body = b"" if request.method == "HEAD" else self._store.read(blob.sha256)
            return Response(200, body, {**headers, "Content-Length": str(blob.size)})
        start, end = span  # inclusive end, as in Content-Range
        body = b"" if request.method == "HEAD" else self._store.read(blob.sha256, start, end + 1)
        headers.update({"Content-Range": f"bytes {start}-{end}/{blob.size}", "Content-Length": str(end - start + 1)})
        return Response(206, body, headers)

    @staticmethod
    def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
        """Parse a single `bytes=` range; None means "send the whole file" (no/unsupported header)."""
        match = _RANGE_RE.fullmatch((header or "").replace(" ", ""))
        if match is None or match.group(1) == match.group(2) == "":
            return None
        first, last = match.groups()
        if first == "":  # suffix range: the last N bytes
            start, end = max(size - int(last), 0), size - 1
        else:
            start, end = int(first), min(int(last), size - 1) if last else size - 1
        if start >= size or start > end:
            raise HubError(416, "Range not satisfiable", headers={"Content-Range": f"bytes */{size}"})
        return start, end


# --------------------------------------------------------------------------- helpers for tests


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (nothing listens on it afterwards)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def closed_port_url(host: str = "127.0.0.1") -> str:
    """URL of a port where nothing listens: any request to it fails fast."""
    return f"http://{host}:{free_port(host)}"


def run_offline_python(
    code: str,
    *,
    hf_home: str | os.PathLike,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    check: bool = True,
) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter with the Hub unreachable and offline mode on.

    HF_HUB_OFFLINE is read when huggingface_hub is imported, hence a subprocess.
    HF_ENDPOINT points at a closed port, so even a request that slipped through
    offline mode would fail instead of reaching the test hub (or the internet).
    """
    full_env = {k: v for k, v in os.environ.items() if k not in HF_PATH_ENV_VARS}  # HF_HOME decides
    full_env.update(
        HF_HOME=os.fspath(hf_home),
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_ENDPOINT=closed_port_url(),
        PYTHONUNBUFFERED="1",
    )
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-c", code], env=full_env, capture_output=True, text=True, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"offline subprocess failed (exit {proc.returncode})\n"
            f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
        )
    return proc
