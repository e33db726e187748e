"""Thread claims: paperlib runs on one machine never oversubscribe the cores silently."""

import subprocess
import warnings

import pytest
import torch

from paperlib import runtime


@pytest.fixture
def claims(tmp_path, monkeypatch):
    monkeypatch.setattr(runtime, "_CLAIMS", tmp_path)
    monkeypatch.setattr(runtime, "cpu_cores", lambda: 2)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(runtime, "_load_average", lambda: 1.0)  # only this process runs
    before = torch.get_num_threads()
    monkeypatch.setattr(runtime.ThreadClaim, "_last_warning", None)
    yield tmp_path
    torch.set_num_threads(before)


def _other_run(folder, threads):
    """A live process that holds `threads` (a sleeping child stands in for another run)."""
    proc = subprocess.Popen(["sleep", "30"])
    (folder / f"{proc.pid}.threads").write_text(f"{threads}\n")
    return proc


def test_alone_a_run_takes_every_core_and_releases_its_claim(claims):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with runtime.ThreadClaim() as claim:
            assert claim.threads == 2 and torch.get_num_threads() == 2
            assert list(claims.glob("*.threads"))
    assert not list(claims.glob("*.threads"))


def test_a_second_run_takes_what_is_left_and_says_so(claims):
    proc = _other_run(claims, 1)
    try:
        with pytest.warns(RuntimeWarning, match="takes the 1 left"):
            with runtime.ThreadClaim() as claim:
                assert claim.threads == 1
    finally:
        proc.kill()


def test_an_oversubscribing_request_warns_with_the_fix(claims):
    proc = _other_run(claims, 2)
    try:
        with pytest.warns(RuntimeWarning, match="OMP_NUM_THREADS=1"):
            with runtime.ThreadClaim(2) as claim:
                assert claim.threads == 2
    finally:
        proc.kill()


def test_claims_of_ended_processes_are_dropped(claims):
    proc = _other_run(claims, 2)
    proc.kill()
    proc.wait()
    assert runtime.other_claims() == {}
    assert not list(claims.glob("*.threads"))


def test_omp_num_threads_is_honoured(claims, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    with runtime.ThreadClaim() as claim:
        assert claim.threads == 1


def test_load_from_outside_the_registry_also_leaves_room(claims, monkeypatch):
    monkeypatch.setattr(runtime, "_load_average", lambda: 2.6)  # another program on a core
    with pytest.warns(RuntimeWarning, match="load average 2.6"):
        with runtime.ThreadClaim() as claim:
            assert claim.threads == 1


def test_the_same_warning_is_given_once(claims):
    proc = _other_run(claims, 1)
    try:
        with pytest.warns(RuntimeWarning):
            with runtime.ThreadClaim():
                pass
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with runtime.ThreadClaim():  # the same situation: no second warning
                pass
    finally:
        proc.kill()


@pytest.mark.parametrize(
    ("load", "others", "parallel", "threads", "noted"),
    [
        (0.1, 0, 1, 2, False),  # an idle machine: one notebook takes both cores
        (0.1, 0, 2, 1, False),  # two notebooks share them out
        (1.0, 0, 1, 1, True),  # another program keeps a core busy (the xdist worker beside a test)
        (0.1, 1, 1, 1, True),  # another paperlib run holds a core
        (2.0, 2, 2, 1, False),  # everything busy: still one thread each, as when idle
    ],
)
def test_kernels_take_only_the_cores_that_are_free(
    claims, monkeypatch, load, others, parallel, threads, noted
):
    monkeypatch.setattr(runtime, "_load_average", lambda: load)
    proc = _other_run(claims, others) if others else None
    try:
        n, note = runtime.kernel_threads(parallel)
    finally:
        if proc is not None:
            proc.kill()
    assert n == threads
    assert (note is not None) == noted
    if noted:
        assert "OMP_NUM_THREADS" in note and f"{threads} thread(s)" in note
