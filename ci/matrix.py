"""Run the whole test suite once per combination of ci/matrix.txt, each in its own venv.

Why: pyproject.toml admits ranges (SQLAlchemy 2.0 and 2.1, langgraph-checkpoint 4.x, asyncpg,
Alembic) and the fast path reads private attributes of some of them; `make test` only ever
sees the newest releases. Each combination gets `.venv-matrix/<name>`, built once and reused
while its pins, pyproject.toml and the interpreter stay the same (a stamp file says so).

A combination may name its interpreter with a `python=X.Y` token (the oldest one runs on the
oldest Python we support); it is looked up on PATH, then among pyenv's versions, and a
combination whose interpreter is missing fails its install step (never silently runs on another).

Usage: python3 ci/matrix.py [NAME ...] [--covered-by VENV] [--list] [--build-only]
  --covered-by VENV  skip a combination whose pins VENV already has installed (the main
                     .venv after `make test`, so `.ci/run` does not run the same suite twice)
Extra pytest arguments come from $MATRIX_PYTEST_ARGS. Exit status 0 only if every
combination run passed (pytest's 5, "no tests collected", is a failure like any other).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TABLE = ROOT / "ci" / "matrix.txt"
VENVS = ROOT / ".venv-matrix"
STAMP = ".matrix-stamp"


@dataclass(frozen=True)
class Combination:
    name: str
    pins: tuple[str, ...]
    python: str | None = None  # "3.10": the interpreter's version; None: the one running us

    def pinned(self) -> dict[str, str]:
        """Normalized project name -> exact version."""
        out: dict[str, str] = {}
        for pin in self.pins:
            name, _, version = pin.partition("==")
            out[_normalize(name)] = version
        return out


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_table(path: Path = TABLE) -> list[Combination]:
    combos = []
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, *tokens = line.split()
        python = None
        if tokens and tokens[0].startswith("python="):
            python = tokens.pop(0).removeprefix("python=")
            if not re.fullmatch(r"3\.\d+", python):
                raise SystemExit(f"{path}: {name!r}: expected python=3.N, got python={python}")
        pins = tokens
        bad = [p for p in pins if not re.fullmatch(r"[A-Za-z0-9_.\-]+==[A-Za-z0-9_.+\-]+", p)]
        if bad or not pins:
            raise SystemExit(f"{path}: {name!r}: expected NAME==VERSION pins, got {bad}")
        combos.append(Combination(name, tuple(pins), python))
    names = [c.name for c in combos]
    if len(set(names)) != len(names):
        raise SystemExit(f"{path}: duplicate combination names {names}")
    return combos


def installed_versions(python: Path) -> dict[str, str]:
    """Every distribution installed in the venv of `python`: normalized name -> version."""
    code = (
        "import json, importlib.metadata as m;"
        "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))"
    )
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True)
    return {_normalize(k): v for k, v in json.loads(done.stdout).items()}


def mismatches(combo: Combination, python: Path) -> list[str]:
    have = installed_versions(python)
    return [
        f"{name}=={want} (installed: {have.get(name, 'none')})"
        for name, want in combo.pinned().items()
        if have.get(name) != want
    ]


def version_of(python: str | Path) -> str | None:
    """`X.Y` of an interpreter, or None if it does not run (a pyenv shim of a version
    that is installed but not selected exits non-zero)."""
    try:
        done = subprocess.run(
            [str(python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    except OSError:
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def interpreter(combo: Combination) -> str:
    """The Python a combination's venv is built with."""
    if combo.python is None:
        return sys.executable
    candidates = [shutil.which(f"python{combo.python}")]
    pyenv = shutil.which("pyenv")
    if pyenv:
        root = subprocess.run([pyenv, "root"], capture_output=True, text=True).stdout.strip()
        if root:
            found = Path(root, "versions").glob(f"{combo.python}.*/bin/python{combo.python}")
            candidates += [str(p) for p in sorted(found, reverse=True)]
    candidates.append(f"/usr/bin/python{combo.python}")
    for candidate in candidates:
        if candidate and version_of(candidate) == combo.python:
            return candidate
    raise InstallError(
        f"Python {combo.python} not found (looked on PATH, in pyenv's versions and /usr/bin); "
        f"install it (for example `pyenv install {combo.python}`) to run this combination"
    )


def stamp_of(combo: Combination, python: str) -> str:
    """What the venv was built from: the pins, pyproject.toml and the interpreter."""
    digest = hashlib.sha256()
    digest.update("\n".join(combo.pins).encode())
    digest.update((ROOT / "pyproject.toml").read_bytes())
    digest.update(str(version_of(python)).encode())
    digest.update(python.encode())
    return digest.hexdigest()


def ensure_venv(combo: Combination, log: Path) -> Path:
    """Build .venv-matrix/<name> unless its stamp matches; return its python."""
    venv = VENVS / combo.name
    python = venv / "bin" / "python"
    stamp = venv / STAMP
    base = interpreter(combo)
    want = stamp_of(combo, base)
    if stamp.is_file() and stamp.read_text() == want and python.exists():
        print(f"[{combo.name}] reusing {venv.relative_to(ROOT)} (pins unchanged)", flush=True)
        return python
    print(f"[{combo.name}] building {venv.relative_to(ROOT)}", flush=True)
    shutil.rmtree(venv, ignore_errors=True)
    VENVS.mkdir(exist_ok=True)
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    constraints = venv / "constraints.txt"
    constraints.write_text("".join(f"{pin}\n" for pin in combo.pins))
    steps = [
        [str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
        # The pins go in as requirements too, so a pin pip cannot honour fails the install
        # instead of being dropped as an unused constraint.
        [str(python), "-m", "pip", "install", "--quiet", "-c", str(constraints),
         "-e", ".[dev]", *combo.pins],
    ]  # fmt: skip
    with log.open("w") as out:
        for step in steps:
            out.write(f"$ {shlex.join(step)}\n")
            out.flush()
            done = subprocess.run(step, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
            if done.returncode:
                raise InstallError(f"install failed (exit {done.returncode}); see {log}")
    wrong = mismatches(combo, python)
    if wrong:
        raise InstallError(f"installed versions differ from the pins: {', '.join(wrong)}")
    stamp.write_text(want)
    return python


class InstallError(Exception):
    pass


@dataclass
class Result:
    name: str
    status: str
    summary: str
    seconds: float


def run_suite(combo: Combination, python: Path, log: Path) -> tuple[int, str]:
    venv = python.parent.parent
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env["VIRTUAL_ENV"] = str(venv)
    env["PYTHONUNBUFFERED"] = "1"
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    # Any pip run inside the suite (the wheel test's clean venv) gets the same pins.
    env["PIP_CONSTRAINT"] = str(venv / "constraints.txt")
    extra = shlex.split(os.environ.get("MATRIX_PYTEST_ARGS", ""))
    cmd = [str(python), "-m", "pytest", "-p", "no:cacheprovider", "-q", *extra]
    summary = last = ""
    with log.open("w") as out:
        out.write(f"$ {shlex.join(cmd)}\n")
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(line)
            out.flush()
            if re.search(r"\d+ (passed|failed|error|errors|skipped|deselected)\b", line) or (
                "no tests ran" in line
            ):
                summary = line.strip().strip("=").strip()
            last = line.strip() or last
        code = proc.wait()
    return code, summary or last


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="combinations to run (default: all)")
    parser.add_argument("--covered-by", type=Path, help="skip combinations this venv already has")
    parser.add_argument("--list", action="store_true", help="print the table and exit")
    parser.add_argument("--build-only", action="store_true", help="build the venvs, run nothing")
    parser.add_argument("--jobs", "-j", type=int, default=1, help="combinations run at once")
    args = parser.parse_args(argv)

    combos = read_table()
    if args.list:
        for combo in combos:
            python = f"python={combo.python} " if combo.python else ""
            print(f"{combo.name:12} {python}{' '.join(combo.pins)}")
        return 0
    unknown = set(args.names) - {c.name for c in combos}
    if unknown:
        parser.error(f"unknown combinations {sorted(unknown)}; known: {[c.name for c in combos]}")
    if args.names:
        combos = [c for c in combos if c.name in args.names]

    def one(combo: Combination) -> Result:
        start = time.monotonic()
        if args.covered_by is not None:
            # Not resolve(): a venv's python is a symlink to the base interpreter.
            main_python = (args.covered_by / "bin" / "python").absolute()
            same_python = combo.python in (None, version_of(main_python))
            if main_python.exists() and same_python and not mismatches(combo, main_python):
                print(f"[{combo.name}] covered by {args.covered_by} (same versions); skipped")
                return Result(combo.name, "covered", f"by {args.covered_by}", 0.0)
        VENVS.mkdir(exist_ok=True)
        install_log = VENVS / f"{combo.name}.install.log"
        test_log = VENVS / f"{combo.name}.pytest.log"
        try:
            python = ensure_venv(combo, install_log)
        except InstallError as exc:
            print(f"[{combo.name}] {exc}", flush=True)
            return Result(combo.name, "INSTALL FAILED", str(exc), time.monotonic() - start)
        if args.build_only:
            return Result(combo.name, "built", "", time.monotonic() - start)
        print(f"[{combo.name}] pytest (log: {test_log.relative_to(ROOT)})", flush=True)
        code, summary = run_suite(combo, python, test_log)
        status = "passed" if code == 0 else f"FAILED (exit {code})"
        seconds = time.monotonic() - start
        print(f"[{combo.name}] {status}: {summary} ({seconds:.0f} s)", flush=True)
        return Result(combo.name, status, summary, seconds)

    # Combinations are independent (own venv, own databases per test, random ports), and
    # the suite mostly waits on PostgreSQL and subprocesses: two at once fit two cores.
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(one, combos))

    print("\nmatrix:")
    for r in results:
        print(f"  {r.name:12} {r.status:18} {r.seconds:6.0f} s  {r.summary}")
    failed = [r for r in results if r.status not in ("passed", "covered", "built")]
    return 1 if failed or not results else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
