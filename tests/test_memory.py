"""The memory measures: exact saved-tensor accounting, and the allocator's peak."""

from __future__ import annotations

import os

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from fomaml_utils.algorithms.maml import meta_gradient
from fomaml_utils.algorithms.models import MLP
from fomaml_utils.companions.memory import peak_memory_bytes, saved_tensor_bytes
from fomaml_utils.data.taskbatch import TaskBatch


def test_saved_tensor_bytes_counts_each_saved_storage_once():
    x = torch.randn(1000, requires_grad=True)  # 4000 bytes

    def square_twice():
        return (x * x).sum()  # mul saves x twice (as both operands): one storage

    _, nbytes = saved_tensor_bytes(square_twice)
    assert nbytes == 4000


def test_saved_tensor_bytes_is_zero_without_autograd():
    x = torch.randn(1000)
    result, nbytes = saved_tensor_bytes(lambda: torch.exp(x).sum())
    assert nbytes == 0 and torch.isfinite(result)


def test_saved_tensor_bytes_drops_a_graph_once_backward_frees_it():
    x = torch.randn(1000, requires_grad=True)

    def many_freed_graphs():
        for _ in range(5):
            torch.autograd.grad(torch.exp(x).sum(), x)  # exp saves its 4000-byte result; freed by grad

    _, nbytes = saved_tensor_bytes(many_freed_graphs)
    assert nbytes == 4000


def batch(tasks=2, ways=5, shots=1, queries=5) -> TaskBatch:
    g = torch.Generator().manual_seed(0)
    return TaskBatch(torch.randn(tasks, ways * shots, 64, generator=g),
                     torch.arange(ways).repeat_interleave(shots).repeat(tasks, 1),
                     torch.randn(tasks, ways * queries, 64, generator=g),
                     torch.arange(ways).repeat_interleave(queries).repeat(tasks, 1))


def _saved_bytes(algorithm: str, inner_steps: int) -> int:
    torch.manual_seed(0)
    model = MLP(64, (32,), 5)
    _, nbytes = saved_tensor_bytes(meta_gradient, model, dict(model.named_parameters()), batch(),
                                   algorithm=algorithm, inner_lr=0.1, inner_steps=inner_steps,
                                   implementation="loop")
    return nbytes


def test_fomaml_saved_tensor_memory_does_not_grow_with_inner_steps_but_maml_does():
    fomaml = [_saved_bytes("fomaml", k) for k in (1, 3, 6)]
    maml = [_saved_bytes("maml", k) for k in (1, 3, 6)]
    assert fomaml[0] == fomaml[1] == fomaml[2]
    assert maml[0] < maml[1] < maml[2]
    # Every extra inner step keeps one more step's activations and backward graph alive: linear growth.
    assert (maml[2] - maml[1]) * 2 == (maml[1] - maml[0]) * 3


def test_peak_memory_bytes_sees_a_large_temporary_on_cpu():
    def big_temporary():
        t = torch.ones(1_000_000)  # 4 MB, freed before returning
        return float(t.sum())

    result, nbytes = peak_memory_bytes(big_temporary, device="cpu")
    assert result == 1_000_000.0
    assert 4_000_000 <= nbytes < 5_000_000


def test_peak_memory_bytes_writes_nothing_to_file_descriptor_2(capfd):
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True):  # the bare profiler is noisy...
        torch.ones(10)
    assert "profiler_st" in capfd.readouterr().err
    result, nbytes = peak_memory_bytes(lambda: torch.ones(1000).sum(), device="cpu")  # ...this is not
    assert capfd.readouterr().err == ""
    assert result == 1000.0 and nbytes >= 4000


def test_peak_memory_bytes_keeps_what_fn_writes_and_its_exceptions_visible(capfd):
    def noisy_failure():
        os.write(2, b"written by fn\n")
        raise KeyError("raised by fn")

    with pytest.raises(KeyError, match="raised by fn"):
        peak_memory_bytes(noisy_failure, device="cpu")
    os.write(2, b"after\n")  # file descriptor 2 is restored after the exception
    assert capfd.readouterr().err == "written by fn\nafter\n"


def test_peak_memory_bytes_drops_only_the_allocators_notice_about_blocks_from_before_the_profiling(capfd):
    def fn():
        os.write(2, b"[W1126 CPUAllocator.cpp:245] Memory block of unknown size was allocated before the "
                    b"profiling started, profiler results will not include the deallocation event\n")
        os.write(2, b"a line of fn's own\n")
        return 1

    assert peak_memory_bytes(fn, device="cpu")[0] == 1
    assert capfd.readouterr().err == "a line of fn's own\n"


def test_saved_tensor_bytes_refuses_torch_func_code_with_a_clear_message():
    model = MLP(784, (16,), 5)
    batch = TaskBatch(torch.randn(2, 5, 784), torch.arange(5).repeat(2, 1),
                      torch.randn(2, 5, 784), torch.arange(5).repeat(2, 1))
    with pytest.raises(ValueError, match="implementation=\"loop\""):
        saved_tensor_bytes(meta_gradient, model, dict(model.named_parameters()), batch, algorithm="maml",
                           inner_lr=0.1, inner_steps=1, implementation="vmap")
