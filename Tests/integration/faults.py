"""System calls that fail on demand, for the real binary: a small library loaded with LD_PRELOAD
whose epoll_ctl and setsockopt refuse as the kernel does when it runs short (ENOMEM), steered by
environment variables. Built with the machine's C compiler into the test's temp dir."""
import shutil
import subprocess
from pathlib import Path

SOURCE = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>

/* FAIL_EPOLL_MODS_AFTER=N: every EPOLL_CTL_MOD after the first N fails. */
static int mods;
int epoll_ctl(int epfd, int op, int fd, struct epoll_event *event) {
    static int (*real)(int, int, int, struct epoll_event *);
    if (!real) real = (int (*)(int, int, int, struct epoll_event *))dlsym(RTLD_NEXT, "epoll_ctl");
    const char *after = getenv("FAIL_EPOLL_MODS_AFTER");
    if (after && op == EPOLL_CTL_MOD && __atomic_add_fetch(&mods, 1, __ATOMIC_SEQ_CST) > atoi(after)) {
        errno = ENOMEM;
        return -1;
    }
    return real(epfd, op, fd, event);
}

/* FAIL_SO_RCVTIMEO=1: setting a receive timeout fails. */
int setsockopt(int fd, int level, int name, const void *value, socklen_t length) {
    static int (*real)(int, int, int, const void *, socklen_t);
    if (!real) real = (int (*)(int, int, int, const void *, socklen_t))dlsym(RTLD_NEXT, "setsockopt");
    if (getenv("FAIL_SO_RCVTIMEO") && level == SOL_SOCKET && name == SO_RCVTIMEO) {
        errno = ENOMEM;
        return -1;
    }
    return real(fd, level, name, value, length);
}
"""


def fault_library(tmp: Path) -> Path:
    source = tmp / "faults.c"
    source.write_text(SOURCE)
    library = tmp / "faults.so"
    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    assert compiler, "a C compiler is needed to build the fault library"
    subprocess.run([compiler, "-shared", "-fPIC", "-o", str(library), str(source), "-ldl"], check=True, timeout=60)
    return library
