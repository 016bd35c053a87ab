"""The contracts pass `buf lint` and `buf breaking` (rules in buf.yaml).

`buf breaking` compares the protos of the working tree with a baseline commit of this checkout:

- where the current branch left main (``git merge-base HEAD main``), when the protos changed since
  (committed on the branch or not): every change the branch brings is checked at once;
- otherwise (on main itself, as in CI on a fresh clone, or on a branch that leaves the protos
  alone) the first parent of the last commit on the first-parent line that changed protos/: main's
  last change to the contracts, a merge as a whole, is checked again.

It needs the history: a shallow clone fails with a message saying so. buf itself is installed into
.venv/bin by ./scripts/test (scripts/buf.py); without it these tests fail, they do not skip.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PROTOS = "protos"
BUF = REPO_ROOT / ".venv" / "bin" / "buf"  # where scripts/buf.py puts it
RUN_PROTO = Path(PROTOS, "switchboard/runs/v1/run_service.proto")


def buf(*args: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    """Run the buf that ./scripts/test installs; fail the test (never skip) when it is missing."""
    if not BUF.is_file():
        pytest.fail(f"buf is not installed at {BUF}: run ./scripts/test (or python scripts/buf.py)")
    return subprocess.run(
        [str(BUF), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def git(*args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


def main_ref() -> str:
    """The local main branch, else the remote's; HEAD when neither exists (a detached checkout)."""
    for ref in ("refs/heads/main", "refs/remotes/origin/main"):
        try:
            git("rev-parse", "--verify", "--quiet", ref)
            return ref
        except RuntimeError:
            continue
    return "HEAD"


def protos_changed_since(commit: str) -> bool:
    """Whether the working tree's protos/ differ from ``commit``'s (uncommitted and new files too)."""
    diff = subprocess.run(
        ["git", "diff", "--quiet", commit, "--", PROTOS], cwd=REPO_ROOT, timeout=60, check=False
    )
    untracked = git("ls-files", "--others", "--exclude-standard", "--", PROTOS)
    return diff.returncode != 0 or bool(untracked)


def baseline_commit() -> tuple[str, str]:
    """The commit whose protos the working tree must stay compatible with, and why that one."""
    try:
        git("rev-parse", "--git-dir")
    except RuntimeError:
        pytest.fail(f"{REPO_ROOT} is not a git checkout: buf breaking compares against its history")
    fork = git("merge-base", "HEAD", main_ref())
    if protos_changed_since(fork):
        return fork, "where this branch left main"
    last = git("log", "--first-parent", "-1", "--format=%H", "--", PROTOS)
    try:
        return git("rev-parse", "--verify", "--quiet", f"{last}^1"), f"before {last[:12]}"
    except RuntimeError:
        if git("rev-parse", "--is-shallow-repository") == "true":
            pytest.fail("shallow clone: buf breaking needs the history (git fetch --unshallow)")
        pytest.fail(f"{last[:12]} created protos/ and has no parent: nothing to compare against")


def extract_protos(commit: str, into: Path) -> Path:
    """protos/ as of ``commit``, written under ``into`` (git archive: no checkout, no network)."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit, PROTOS],
        cwd=REPO_ROOT, capture_output=True, timeout=60, check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / PROTOS


def copy_of_tree(into: Path) -> Path:
    """buf.yaml and protos/ of the working tree, copied under ``into`` to be changed by a test."""
    shutil.copy(REPO_ROOT / "buf.yaml", into / "buf.yaml")
    shutil.copytree(REPO_ROOT / PROTOS, into / PROTOS)
    return into


def test_protos_pass_buf_lint():
    done = buf("lint")
    assert done.returncode == 0, f"buf lint:\n{done.stdout}{done.stderr}"


def test_protos_have_no_breaking_change_against_the_baseline(tmp_path):
    commit, why = baseline_commit()
    against = extract_protos(commit, tmp_path)
    done = buf("breaking", "--against", str(against))
    assert done.returncode == 0, (
        f"buf breaking against {commit[:12]} ({why}):\n{done.stdout}{done.stderr}"
    )


def test_buf_lint_refuses_an_enum_without_its_unspecified_zero_value(tmp_path):
    tree = copy_of_tree(tmp_path)
    proto = tree / RUN_PROTO
    proto.write_text(
        proto.read_text() + "\n// A colour.\nenum Colour {\n  // Red.\n  RED = 0;\n}\n"
    )
    done = buf("lint", cwd=tree)
    assert done.returncode != 0
    assert 'Enum zero value name "RED" should be suffixed with "_UNSPECIFIED"' in done.stdout
    assert 'Enum value name "RED" should be prefixed with "COLOUR_"' in done.stdout


def test_buf_breaking_refuses_a_deleted_field(tmp_path):
    tree = copy_of_tree(tmp_path)
    proto = tree / RUN_PROTO
    text = proto.read_text()
    assert "  string page_token = 6;\n" in text
    proto.write_text(text.replace("  string page_token = 6;\n", ""))
    done = buf("breaking", "--against", str(REPO_ROOT / PROTOS), cwd=tree)
    assert done.returncode != 0
    assert 'field "6" with name "page_token" on message "ListRunsRequest" was deleted' in done.stdout


def test_buf_breaking_accepts_an_added_field_and_rpc(tmp_path):
    tree = copy_of_tree(tmp_path)
    proto = tree / RUN_PROTO
    text = proto.read_text()
    anchor = "  string agent_id = 7;\n}\n"
    assert anchor in text
    text = text.replace(anchor, "  string agent_id = 7;\n  // A new filter.\n  string note = 8;\n}\n")
    rpc = "service RunService {\n"
    assert rpc in text
    text = text.replace(
        rpc, rpc + "  // A new call.\n  rpc PingRuns(PingRunsRequest) returns (PingRunsResponse);\n"
    )
    text += (
        "\n// Request of RunService.PingRuns.\nmessage PingRunsRequest {}\n"
        "\n// Response of RunService.PingRuns.\nmessage PingRunsResponse {}\n"
    )
    proto.write_text(text)
    assert buf("lint", cwd=tree).returncode == 0
    done = buf("breaking", "--against", str(REPO_ROOT / PROTOS), cwd=tree)
    assert done.returncode == 0, f"{done.stdout}{done.stderr}"
