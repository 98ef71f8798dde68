"""The profile summary's layers: what the corrected split of docs/benchmarks.md is made of."""

from bench.profile_summary import layer, where

KERNEL = "[kernel.kallsyms]"
LIBPYTHON = "/root/.pyenv/versions/3.11.7/lib/libpython3.11.so.1.0"


def test_a_sample_in_a_system_call_is_that_call_whatever_ran_below_it() -> None:
    stack = [("tcp_sendmsg", KERNEL), ("__x64_sys_sendto", KERNEL), ("do_syscall_64", KERNEL),
             ("__libc_sendto", "/usr/lib/x86_64-linux-gnu/libc.so.6"), ("sock_call", LIBPYTHON)]
    assert layer(stack) == "syscall sendto"
    fault = [("clear_page_erms", KERNEL), ("asm_exc_page_fault", KERNEL), ("_int_malloc", "x")]
    assert layer(fault) == "kernel, no syscall (page faults, interrupts, scheduling)"


def test_a_user_space_sample_is_its_leaf_library() -> None:
    assert layer([("_PyEval_EvalFrameDefault", LIBPYTHON)]) == "interpreter"
    assert layer([("ff_h264_parse", "/usr/lib/libavcodec.so.59")]) == "FFmpeg libraries"
    assert layer([("memcpy", "/usr/lib/x86_64-linux-gnu/libc.so.6")]) == "libc"


def test_python_frames_group_by_package_and_relay_subpackage() -> None:
    assert where("unrolled_run (trio/_core/_run.py:2866)") == "trio"
    assert where("NalDepacketizer._hold (relay/rtp/nal.py:120)") == "relay/rtp"
    assert where("SourceIngest.receive_rtp (relay/ingest.py:150)") == "relay/ingest.py"
    assert where("_run_code (<frozen runpy>:88)") == "<frozen runpy>"
