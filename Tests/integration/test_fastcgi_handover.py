"""counter-fcgi hands libfcgi connections it accepted itself, through two fields of libfcgi's public
FCGX_Request (FastCGIRequest.swift, "The connection handover"). That rests on how libfcgi 2.4.2
treats them: these tests pin the version and the fields, so a libfcgi update is read again before
it is trusted; the keep-alive tests (test_reliability.py) check the behaviour itself."""
import re
import subprocess
from pathlib import Path


def test_libfcgi_is_the_version_the_handover_was_read_against():
    version = subprocess.run(["pkg-config", "--modversion", "fcgi"], capture_output=True, text=True, check=True)
    assert version.stdout.strip() == "2.4.2", "read fcgiapp.c's FCGX_Accept_r and FCGX_Finish_r again, then update"


def test_the_handover_fields_are_in_the_public_struct():
    # Debian's fcgi.pc names no includedir: the header is where `pkg-config --cflags` says, or /usr/include.
    cflags = subprocess.run(["pkg-config", "--cflags", "fcgi"], capture_output=True, text=True, check=True).stdout.split()
    folders = [flag[2:] for flag in cflags if flag.startswith("-I")] + ["/usr/include"]
    header = next(Path(f) / "fcgiapp.h" for f in folders if (Path(f) / "fcgiapp.h").exists()).read_text()
    struct = re.search(r"typedef struct FCGX_Request \{(.*?)\} FCGX_Request;", header, re.S)
    assert struct, "FCGX_Request is no longer a public struct"
    fields = re.findall(r"^\s*int\s+(\w+);", struct.group(1), re.M)
    assert "ipcFd" in fields and "keepConnection" in fields, fields
