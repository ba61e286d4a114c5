"""What multiprocessing's fork server does once, before it forks the first mapping process
(``connector.sync.pool``). ``MappingPool`` names this module in ``set_forkserver_preload``; the
server imports it, and every worker forked from the server starts from what it left:

- **Built once, shared by every worker**: the country index (``connector.countries``: 1.3 s
  and 11.5 MiB, which each worker would otherwise build in its first chunk: measured, a
  worker's first chunk of 2,000 rows took 0.81 CPU-seconds against 0.12 for its next; 0.15
  with the index built here), and the phone library's metadata of every region (0.1 s, 1.4
  MiB). Then what building left for the collector is collected, and ``gc.freeze()`` moves
  every object the server holds out of the collector's sight, so that no worker's collection
  writes to (and so copies) the pages it shares with the server.
- **No secrets.** The server is started with the run's environment, which holds what the
  configuration's ``${VAR}`` name (client secrets, database passwords), and a worker needs none
  of it. Every variable but those ``pool.kept`` keeps is removed from ``os.environ``, and its text is erased
  from the block the kernel shows as ``/proc/PID/environ`` (removing a variable leaves its
  text there: the block is the process's initial stack, which ``unsetenv`` never writes).
- **No core dumps**, and not dumpable, as the command line's own process and the workers.

multiprocessing's ``resource_tracker``, which the forkserver context starts before the server
with the same environment (a pool of pipes registers nothing with it, but nothing public lets it
be skipped), is started earlier, without secrets: ``pool.start_resource_tracker``.

Imported anywhere else, this module does nothing (``in_fork_server``).
"""

from __future__ import annotations

import ctypes
import gc
import os
import sys
from pathlib import Path

import phonenumbers
from phonenumbers import PhoneMetadata

import connector.phones  # noqa: F401 - imported here, once for every worker
from connector import countries
from connector.sync import pool
from connector.sync.pool import kept

_SERVER = "from multiprocessing.forkserver import main;"
"""How multiprocessing starts its fork server: ``python -c`` with this code."""


def in_fork_server() -> bool:
    """Whether this process is multiprocessing's fork server (from its command line)."""
    argv = sys.orig_argv
    return len(argv) >= 2 and argv[-2] == "-c" and argv[-1].startswith(_SERVER)


def prepare() -> None:
    """Make this process what every worker should start from (the module's docstring)."""
    scrub_environment()
    pool.keep_out_of_dumps()
    countries.region_for("")  # builds the index
    for region in phonenumbers.SUPPORTED_REGIONS:
        PhoneMetadata.metadata_for_region(region)
    for code in phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS:
        PhoneMetadata.metadata_for_nongeo_region(code)
    gc.collect()
    gc.freeze()


def scrub_environment() -> None:
    """Remove every variable but those ``kept`` from ``os.environ`` (and so from the C
    library's), and erase the text of each from the process's initial environment block, the
    one ``/proc/PID/environ`` shows (Linux: where ``/proc/self/stat`` says it is)."""
    for name in [name for name in os.environ if not kept(name)]:
        del os.environ[name]
    if not sys.platform.startswith("linux"):
        return
    fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    start, end = int(fields[47]), int(fields[48])  # env_start and env_end, stat(5)'s 50 and 51
    at = start
    for entry in ctypes.string_at(start, end - start).split(b"\0"):
        name = entry.split(b"=", 1)[0].decode(errors="replace")
        if entry and not kept(name):
            ctypes.memset(at, 0, len(entry))  # the C library no longer points here: unset above
        at += len(entry) + 1


if in_fork_server():
    prepare()
