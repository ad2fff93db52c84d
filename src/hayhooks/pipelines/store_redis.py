"""The Redis pipelines store: one source of truth for instances that share no filesystem.

``HAYHOOKS_STORE_URL=redis://...`` (extra ``hayhooks[redis]``). Redis holds what is deployed::

    <prefix>:generation        the change counter (never goes backwards)
    <prefix>:entries           hash "saved/<name>" | "ephemeral/<name>" -> one version (JSON: kind,
                               entry name, files base64-encoded, content fingerprint, time)
    <prefix>:archive:<name>    list of replaced and undeployed versions, newest first (archive_keep)
    <prefix>:seeded            set while the state is a seed taken from a local copy (see converge)
    <prefix>:workers           hash worker id -> heartbeat (``cluster_redis.RedisCluster``)

Every change is one optimistic transaction (WATCH the counter and the entries, check, MULTI/EXEC,
retry on conflict), so a deploy is atomic and two instances never both win a "does not exist yet".

Each instance keeps its pipelines directory as the *materialised copy*, managed by the directory
store this class extends: workers load from it exactly as before, and it keeps serving while Redis
is unreachable. ``converge`` (called by every snapshot, idempotent, under the directory's exclusive
lock) makes the local copy equal to Redis's state and records Redis's generation as the local one,
so generations in heartbeats are Redis generations. The local copy is a cache: hand edits are
overwritten on the next converge (with a warning). Fingerprints are content hashes, identical on
every instance, so a deploy's acknowledgement (``Cluster.wait_for``) means the same everywhere.

Redis losing its data (restarted without persistence) never loses a committed deploy: an empty
Redis is seeded from a local copy, and a seed is replaced by any instance whose copy is newer.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

from hayhooks.errors import PipelineExists, PipelineNotFound, StoreUnavailable
from hayhooks.pipelines.cluster import Cluster
from hayhooks.pipelines.ignore import IgnoreRules
from hayhooks.pipelines.models import PipelineSource
from hayhooks.pipelines.store import (
    WRAPPER_FILE,
    YAML_SUFFIXES,
    PipelineStore,
    choose_archived,
    entry_files,
    entry_fingerprint,
    scan_entries,
)
from hayhooks.redis_support import RedisClientMissing, redis_module

log = logging.getLogger("hayhooks")

RECORD_FILE = "redis-mirror.json"  # in .hayhooks/: what the local copy holds, at which generation
_RETRY_AFTER_FAILURE = 1.0  # seconds without trying Redis again after it failed (cheap checks only)


def content_fingerprint(entry: str, files: dict[str, str]) -> str:
    """Same files, same fingerprint, on every host (the directory store's one is per inode)."""
    digest = hashlib.blake2b(digest_size=12)
    digest.update(entry.encode())
    for rel in sorted(files):
        digest.update(b"\0" + rel.encode() + b"\0" + files[rel].encode())
    return digest.hexdigest()


def read_entry(path: Path, ignore: Optional[IgnoreRules]) -> dict[str, str]:
    """The files of one entry, base64-encoded: ``{"": ...}`` for a YAML file, relative paths for a folder."""
    if path.is_file():
        return {"": base64.b64encode(path.read_bytes()).decode()}
    return {
        file.relative_to(path).as_posix(): base64.b64encode(file.read_bytes()).decode()
        for file in entry_files(path, ignore)
    }


def write_entry(target: Path, files: dict[str, str]) -> None:
    if "" in files:
        target.write_bytes(base64.b64decode(files[""]))
        return
    target.mkdir(parents=True)
    for rel, data in files.items():
        path = target.joinpath(*rel.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))


class RedisPipelineStore(PipelineStore):
    backend = "redis"

    def __init__(
        self,
        root: Path,
        url: str,
        key_prefix: str = "hayhooks:store",
        archive_keep: int = 10,
        ignore: Optional[IgnoreRules] = None,
    ) -> None:
        super().__init__(root, archive_keep, ignore)
        try:
            self._redis = redis_module("HAYHOOKS_STORE_URL=redis://...")
        except RedisClientMissing as exc:  # a 503 naming the extra, not a 500
            raise StoreUnavailable(str(exc)) from exc
        # Short timeouts: a worker checks the generation ten times a second and must fall back
        # to its local copy quickly when Redis is gone.
        self.client = self._redis.Redis.from_url(
            url, decode_responses=True, socket_timeout=2, socket_connect_timeout=1
        )
        self.url = url
        self.prefix = key_prefix
        self._down_until = 0.0
        self._down = False

    # -- keys and connection ---------------------------------------------------------------------
    def k(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    @property
    def _errors(self) -> tuple[type[BaseException], ...]:
        return (self._redis.ConnectionError, self._redis.TimeoutError)

    def _call(self, fn: Callable[[], Any]) -> Any:
        """Run one Redis operation; unreachable Redis is a 503 that says so, and is remembered
        for a second so that the cheap checks fall back to the local copy without waiting."""
        try:
            result = fn()
        except self._errors as exc:
            self._down_until = time.monotonic() + _RETRY_AFTER_FAILURE
            if not self._down:
                self._down = True
                log.warning("Pipelines store (Redis) unreachable: serving the local copy (%s)", exc)
            # The reason (host, port) goes to the log, not to the client.
            raise StoreUnavailable(
                "The pipelines store (Redis) is unreachable right now: changes are refused until it is back"
            ) from exc
        if self._down:
            self._down = False
            log.info("Pipelines store (Redis) reachable again")
        return result

    def reachable(self) -> bool:
        return time.monotonic() >= self._down_until

    def make_cluster(self, heartbeat_interval: float, on_dead: Optional[Callable[[str], None]]) -> Cluster:
        from hayhooks.pipelines.cluster_redis import RedisCluster

        return RedisCluster(self, heartbeat_interval, on_dead)

    # -- reading ---------------------------------------------------------------------------------
    def generation(self) -> int:
        """Redis's generation (a GET), or the local copy's while Redis is unreachable.

        -1 while Redis holds nothing yet: a worker then syncs, and the sync seeds Redis.
        """
        if not self.reachable():
            return super().generation()
        try:
            value = self._call(lambda: self.client.get(self.k("generation")))
        except StoreUnavailable:
            return super().generation()
        return -1 if value is None else int(value)

    def snapshot(self, floor: int = 0) -> tuple[int, list[PipelineSource]]:
        """Converge the local copy on Redis (if reachable), then read the local copy.

        A local copy that cannot be written (``read_only``) is served as it is.
        """
        if self.reachable() and not self.read_only:
            try:
                self.converge()
            except StoreUnavailable:
                pass
        return self._local_snapshot(floor)

    def _local_snapshot(self, floor: int) -> tuple[int, list[PipelineSource]]:
        with self.locked(exclusive=False):
            record = self._record()
            # Once mirrored, the local generation is Redis's: never "repaired" from local records.
            generation = (
                record["generation"] if record["generation"] >= 0 else self._checked_generation(floor)
            )
            found = scan_entries(self.root, "saved", self.ignore) + scan_entries(
                self.ephemeral, "ephemeral", self.ignore
            )
        entries: dict[str, PipelineSource] = {}
        for src in found:  # ephemeral last: shadows the saved one of the same name
            mirrored = record["entries"].get(f"{src.origin}/{src.name}")
            if mirrored is not None and mirrored["local"] == src.fingerprint:
                src = PipelineSource(src.name, src.kind, src.path, mirrored["fingerprint"], src.origin)
            entries[src.name] = src
        return generation, [entries[name] for name in sorted(entries)]

    def _record(self) -> dict[str, Any]:
        try:
            data = json.loads((self.meta / RECORD_FILE).read_text())
            if isinstance(data.get("generation"), int) and isinstance(data.get("entries"), dict):
                return data
        except (OSError, ValueError, AttributeError):
            pass
        return {"generation": -1, "entries": {}}

    def _write_record(self, record: dict[str, Any]) -> None:
        tmp = self.meta / f".{RECORD_FILE}.{uuid.uuid4().hex}"
        tmp.write_text(json.dumps(record))
        os.replace(tmp, self.meta / RECORD_FILE)

    def _drift(self, record: dict[str, Any]) -> list[str]:
        """Local entries that differ from what the last converge wrote (hand edits)."""
        found = {
            f"{src.origin}/{src.name}": src.fingerprint
            for src in scan_entries(self.root, "saved", self.ignore)
            + scan_entries(self.ephemeral, "ephemeral", self.ignore)
        }
        local = {key: entry["local"] for key, entry in record["entries"].items()}
        return sorted(key for key in set(found) | set(local) if found.get(key) != local.get(key))

    def _read_head(self) -> tuple[Optional[int], Optional[int]]:
        """Redis's generation (None: Redis is empty) and, for a seed, the generation of the
        committed state it was taken from (None: the state comes from real commits)."""

        def read() -> list[Any]:
            pipe = self.client.pipeline(transaction=True)
            pipe.get(self.k("generation"))
            pipe.get(self.k("seeded"))
            return pipe.execute()  # type: ignore[no-any-return]

        gen, seeded = self._call(read)
        return (None if gen is None else int(gen)), (None if seeded is None else int(seeded))

    def _read_state(self) -> tuple[Optional[int], dict[str, dict[str, Any]], Optional[int]]:
        def read() -> list[Any]:
            pipe = self.client.pipeline(transaction=True)
            pipe.get(self.k("generation"))
            pipe.hgetall(self.k("entries"))
            pipe.get(self.k("seeded"))
            return pipe.execute()  # type: ignore[no-any-return]

        gen, entries, seeded = self._call(read)
        state: dict[str, dict[str, Any]] = {}
        for key, text in entries.items():
            version = _valid_version(key, text)
            if version is None:
                log.warning("Ignoring an invalid entry %r of the pipelines store (Redis)", key)
                continue
            state[key] = version
        return (None if gen is None else int(gen)), state, (None if seeded is None else int(seeded))

    def converge(self) -> int:
        """Make the local copy what Redis holds (seeding an empty Redis from it). Idempotent.

        Cheap when nothing changed: two GETs and a scan of the local copy (no file contents).
        """
        record = self._record()
        generation, seeded = self._read_head()
        committed = int(record.get("committed", record["generation"]))
        if generation is None or (seeded is not None and committed > seeded):
            # Redis is empty (new, or restarted without persistence), or holds a seed older than
            # this copy: this copy becomes the state. Never loses a deploy Redis forgot.
            self._seed()
            generation, seeded = self._read_head()
        elif generation < (floor := max(record["generation"], PipelineStore.generation(self))):
            # Redis lost its data and was written since, or this copy served a higher local
            # generation while Redis was away: workers never see the counter go back.
            self._raise_generation(floor + 1)
            generation, seeded = self._read_head()
        if generation is None:
            return -1
        if generation == record["generation"] and not self._drift(record):
            return generation
        with self.locked(exclusive=True):
            record = self._record()
            generation, state, seeded = self._read_state()  # read under the lock: never apply an older one
            if generation is None or generation < record["generation"]:
                return record["generation"]
            drift = self._drift(record)
            if generation == record["generation"] and not drift:
                return generation
            if record["generation"] >= 0 and drift:
                log.warning(
                    "Local copy of the pipelines store differs from Redis (hand edits?): %s; "
                    "overwritten with the store's version (the Redis store is the source of truth)",
                    ", ".join(drift),
                )
            self._apply(generation, state, record, generation if seeded is None else seeded)
        return generation

    def _apply(
        self, generation: int, state: dict[str, dict[str, Any]], record: dict[str, Any], committed: int
    ) -> None:
        """Under the exclusive lock: write Redis's entries in place, drop the others."""
        kept: dict[str, dict[str, str]] = {}
        bases = {"saved": self.root, "ephemeral": self.ephemeral}
        present = {
            f"{src.origin}/{src.name}": src
            for src in scan_entries(self.root, "saved", self.ignore)
            + scan_entries(self.ephemeral, "ephemeral", self.ignore)
        }
        for key, version in state.items():
            origin, name = key.split("/", 1)
            base = bases[origin]
            mine, have = record["entries"].get(key), present.get(key)
            if (
                mine is not None
                and have is not None
                and mine["fingerprint"] == version["fingerprint"]
                and mine["local"] == have.fingerprint
            ):
                kept[key] = mine
                continue
            scratch = self.staging / uuid.uuid4().hex / version["entry"]
            scratch.parent.mkdir(parents=True)
            try:
                write_entry(scratch, version["files"])
                for path in _paths(base, name):
                    _delete(path)
                final = base / version["entry"]
                os.replace(scratch, final)
            finally:
                shutil.rmtree(scratch.parent, ignore_errors=True)
            local = entry_fingerprint(final, self.ignore if final.is_dir() else None)
            kept[key] = {"fingerprint": version["fingerprint"], "local": local}
        for key, src in present.items():
            if key not in state:
                if key not in record["entries"]:
                    log.warning("Removing '%s' from the local copy: the Redis store does not hold it", key)
                _delete(Path(src.path))
        self._write_record({"generation": generation, "committed": committed, "entries": kept})
        self._write_generation(generation)

    def _seed(self) -> None:
        """Fill an empty Redis (or replace an older seed) from the local copy, atomically.

        A copy that was never a mirror (a first start: bundled examples) seeds its saved
        pipelines only; a mirror's save_files=false deploys belong to the running cluster too.
        """
        record = self._record()
        committed = int(record.get("committed", record["generation"]))
        with self.locked(exclusive=True):
            found = scan_entries(self.root, "saved", self.ignore)
            if record["generation"] >= 0:
                found += scan_entries(self.ephemeral, "ephemeral", self.ignore)
            versions = {
                f"{src.origin}/{src.name}": self._version(src.name, Path(src.path), src.origin, 0)
                for src in found
            }
            floor = max(record["generation"], PipelineStore.generation(self))
        seeded = False

        def seed(pipe: Any) -> None:
            nonlocal seeded
            current, source = pipe.get(self.k("generation")), pipe.get(self.k("seeded"))
            if current is not None and (source is None or committed <= int(source)):
                return  # someone else seeded (or committed) first: we converge on theirs
            new = max(floor, int(current or 0)) + 1
            pipe.multi()
            pipe.delete(self.k("entries"))
            for key, version in versions.items():
                pipe.hset(self.k("entries"), key, json.dumps({**version, "generation": new}))
            pipe.set(self.k("generation"), new)
            pipe.set(self.k("seeded"), committed)
            seeded = True

        self._call(lambda: self.client.transaction(seed, self.k("generation"), self.k("seeded")))
        if seeded:
            log.warning(
                "Pipelines store (Redis) was empty or held an older seed: seeded from this instance's "
                "local copy (%d pipeline(s))",
                len(versions),
            )

    def _raise_generation(self, floor: int) -> None:
        def bump(pipe: Any) -> None:
            current = int(pipe.get(self.k("generation")) or 0)
            if current < floor:
                pipe.multi()
                pipe.set(self.k("generation"), floor)

        self._call(lambda: self.client.transaction(bump, self.k("generation")))

    def _version(self, name: str, path: Path, origin: str, generation: int) -> dict[str, Any]:
        files = read_entry(path, self.ignore)
        return {
            "name": name,
            "origin": origin,
            "kind": "yaml" if "" in files else "wrapper",
            "entry": path.name,
            "files": files,
            "fingerprint": content_fingerprint(path.name, files),
            "at": time.time(),
            "generation": generation,
        }

    # -- writing ---------------------------------------------------------------------------------
    def commit(
        self, name: str, staged: Path, *, ephemeral: bool, overwrite: bool, action: str = "deploy"
    ) -> tuple[int, PipelineSource]:
        self.converge()  # an empty Redis is seeded before the first change lands on it
        version = self._version(name, staged, "ephemeral" if ephemeral else "saved", 0)
        generation = self._commit_version(name, version, overwrite, action)
        return generation, self._after_write(name, version)

    def _commit_version(self, name: str, version: dict[str, Any], overwrite: bool, action: str) -> int:
        ephemeral = version["origin"] == "ephemeral"

        def tx(pipe: Any) -> int:
            existing = {o: pipe.hget(self.k("entries"), f"{o}/{name}") for o in ("saved", "ephemeral")}
            if any(existing.values()) and not overwrite:
                raise PipelineExists(f"Pipeline '{name}' already exists; use overwrite to replace it")
            new = int(pipe.get(self.k("generation")) or 0) + 1
            pipe.multi()
            for origin, old in existing.items():
                # A saved version stays put under an ephemeral overwrite: it returns after a restart.
                if old is None or (ephemeral and origin == "saved"):
                    continue
                why = "overwritten" if action == "deploy" else action
                self._push_archive(pipe, name, json.loads(old), new, why)
                pipe.hdel(self.k("entries"), f"{origin}/{name}")
            pipe.hset(
                self.k("entries"), f"{version['origin']}/{name}", json.dumps({**version, "generation": new})
            )
            pipe.set(self.k("generation"), new)
            pipe.delete(self.k("seeded"))
            return new

        return int(self._call(lambda: self._transaction(tx)))

    def _transaction(self, tx: Callable[[Any], int]) -> int:
        return self.client.transaction(  # type: ignore[no-any-return]
            tx, self.k("generation"), self.k("entries"), value_from_callable=True
        )

    def _push_archive(self, pipe: Any, name: str, old: dict[str, Any], generation: int, action: str) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"-{uuid.uuid4().hex[:6]}"
        archived = {**old, "version": stamp, "generation": generation, "action": action, "at": time.time()}
        pipe.lpush(self.k("archive", name), json.dumps(archived))
        pipe.ltrim(self.k("archive", name), 0, self.archive_keep - 1)

    def _after_write(self, name: str, version: dict[str, Any]) -> PipelineSource:
        """Bring the local copy up to date now (best effort: the followers do it otherwise)."""
        try:
            self.converge()
        except StoreUnavailable:
            log.warning("Committed '%s' to Redis, but could not update the local copy yet", name)
        base = self.ephemeral if version["origin"] == "ephemeral" else self.root
        return PipelineSource(
            name,
            version["kind"],
            str(base / version["entry"]),
            version["fingerprint"],
            version["origin"],
        )

    def remove(self, name: str, action: str = "undeployed") -> int:
        def tx(pipe: Any) -> int:
            existing = {o: pipe.hget(self.k("entries"), f"{o}/{name}") for o in ("saved", "ephemeral")}
            if not any(existing.values()):
                raise PipelineNotFound(f"Pipeline '{name}' not found")
            new = int(pipe.get(self.k("generation")) or 0) + 1
            pipe.multi()
            for origin, old in existing.items():
                if old is not None:
                    self._push_archive(pipe, name, json.loads(old), new, action)
                    pipe.hdel(self.k("entries"), f"{origin}/{name}")
            pipe.set(self.k("generation"), new)
            pipe.delete(self.k("seeded"))
            return new

        self.converge()
        generation = int(self._call(lambda: self._transaction(tx)))
        self._converge_quietly()
        return generation

    def remove_ephemeral(self, name: str) -> int:
        def tx(pipe: Any) -> int:
            if pipe.hget(self.k("entries"), f"ephemeral/{name}") is None:
                raise PipelineNotFound(f"Pipeline '{name}' has no unsaved version")
            new = int(pipe.get(self.k("generation")) or 0) + 1
            pipe.multi()
            pipe.hdel(self.k("entries"), f"ephemeral/{name}")
            pipe.set(self.k("generation"), new)
            pipe.delete(self.k("seeded"))
            return new

        generation = int(self._call(lambda: self._transaction(tx)))
        self._converge_quietly()
        return generation

    def drop_ephemeral(self) -> int:
        """The cluster's first worker: save_files=false deploys of the previous run are forgotten."""

        def tx(pipe: Any) -> int:
            keys = [key for key in pipe.hkeys(self.k("entries")) if key.startswith("ephemeral/")]
            current = int(pipe.get(self.k("generation")) or 0)
            if not keys:
                return current
            pipe.multi()
            pipe.hdel(self.k("entries"), *keys)
            pipe.set(self.k("generation"), current + 1)
            return current + 1

        return int(self._call(lambda: self._transaction(tx)))

    def _converge_quietly(self) -> None:
        try:
            self.converge()
        except StoreUnavailable:
            pass

    def restore(self, name: str, version: Optional[str] = None) -> tuple[int, PipelineSource, str]:
        chosen = choose_archived(name, self._archive_list(name), version)
        keep = ("name", "origin", "kind", "entry", "files", "fingerprint")
        again = {key: chosen[key] for key in keep}
        again["at"] = time.time()
        self.converge()
        generation = self._commit_version(name, again, True, "rolled back")
        return generation, self._after_write(name, again), str(chosen["version"])

    def _archive_list(self, name: str) -> list[dict[str, Any]]:
        raw = self._call(lambda: self.client.lrange(self.k("archive", name), 0, -1))
        out = []
        for item in raw:
            try:
                out.append(json.loads(item))
            except ValueError:
                continue
        return sorted(out, key=lambda v: (v.get("at", 0), v.get("version", "")), reverse=True)

    def history(self, name: str) -> list[dict[str, Any]]:
        def read() -> list[Any]:
            pipe = self.client.pipeline(transaction=True)
            pipe.hget(self.k("entries"), f"saved/{name}")
            pipe.hget(self.k("entries"), f"ephemeral/{name}")
            return pipe.execute()  # type: ignore[no-any-return]

        saved, ephemeral = self._call(read)
        out: list[dict[str, Any]] = []
        current = ephemeral or saved
        if current is not None:
            data = json.loads(current)
            out.append({"version": "current", "current": True, "origin": data["origin"], "at": data["at"]})
        for v in self._archive_list(name):
            out.append(
                {
                    "version": str(v["version"]),
                    "generation": int(v["generation"]),
                    "action": str(v["action"]),
                    "origin": str(v.get("origin", "saved")),
                    "at": float(v["at"]),
                    "current": False,
                }
            )
        return out

    def join(self, worker: str, alone: Callable[[], bool]) -> bool:
        """Locally: scratch folders of dead workers go. Cluster-wide (``alone`` asks Redis for live
        workers): the first worker of the whole cluster forgets the previous run's unsaved deploys.
        With Redis unreachable nothing is dropped: the local copy is served as it is."""
        with self.locked(exclusive=True):
            first = alone()
            if first:
                for leftover in self.staging.iterdir():
                    shutil.rmtree(leftover, ignore_errors=True)
                for folder in self.work.iterdir():
                    if folder.name != worker:
                        shutil.rmtree(folder, ignore_errors=True)
        if first and self.reachable():
            try:
                self.drop_ephemeral()
            except StoreUnavailable:
                pass
        return first

    def clear_ephemeral(self, keep_worker: str = "") -> None:
        self.drop_ephemeral()
        self._converge_quietly()


def _valid_version(key: str, text: str) -> Optional[dict[str, Any]]:
    """A stored version we can write safely: known origin, a plain folder name, relative paths."""
    try:
        origin, name = key.split("/", 1)
        version = json.loads(text)
        if not name or name.startswith((".", "_")) or any(c in name for c in "/\\\0"):
            return None
        entry, files = version["entry"], version["files"]
        ok = (
            origin in ("saved", "ephemeral")
            and entry in (name, *(f"{name}{s}" for s in YAML_SUFFIXES))
            and isinstance(files, dict)
            and isinstance(version["fingerprint"], str)
            and all(
                isinstance(rel, str)
                and isinstance(data, str)
                and ".." not in rel.split("/")
                and not rel.startswith("/")
                for rel, data in files.items()
            )
        )
        return version if ok else None  # type: ignore[no-any-return]
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


def _paths(base: Path, name: str) -> list[Path]:
    found = [base / name] if (base / name / WRAPPER_FILE).exists() or (base / name).is_dir() else []
    return found + [base / f"{name}{s}" for s in YAML_SUFFIXES if (base / f"{name}{s}").exists()]


def _delete(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
