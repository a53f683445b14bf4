"""private_dir makes 0700 folders without touching the process-wide umask."""

from __future__ import annotations

import os
import stat
import threading

from soong.core.paths import private_dir


def test_every_missing_folder_is_0700(tmp_path):
    target = private_dir(tmp_path / "a" / "b" / "c")
    for folder in (tmp_path / "a", tmp_path / "a" / "b", target):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert private_dir(target) == target  # already there: fine


def test_files_other_threads_write_meanwhile_keep_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        stop = threading.Event()
        modes = []

        def writer():
            index = 0
            while not stop.is_set():
                path = tmp_path / "shared" / f"f{index}"
                path.write_text("x")
                modes.append(stat.S_IMODE(path.stat().st_mode))
                index += 1

        (tmp_path / "shared").mkdir()
        thread = threading.Thread(target=writer)
        thread.start()
        try:
            for index in range(300):
                private_dir(tmp_path / "private" / str(index) / "inner")
        finally:
            stop.set()
            thread.join()
        assert modes and set(modes) == {0o644}
    finally:
        os.umask(old)
