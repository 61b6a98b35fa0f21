"""Each trial's scratch folder: the user's own, unpredictable, gone when the trial ends.

Why: the scratch root is shared with strangers (/tmp on a login node, and the
batch node's $TMPDIR may be shared by several users' jobs). A path others can
predict there is theirs to prepare: a symlink planted where a trial writes
its log makes the trial overwrite a file of its own user, and a folder they
own makes every trial fail. So, where the trial runs:

- the site's ``paths.scratch_dir`` is expanded there (a batch job's $TMPDIR is
  its own, not the driver's);
- inside it, one folder per user, ``batchml-<uid>``: made 0700 by ``mkdir``
  (which never follows a link), then opened with O_NOFOLLOW and checked: a
  folder, this user's, closed to group and others. Anything else is refused,
  naming the path and the fix, rather than used;
- inside that, one folder per trial with a random name (``mkdtemp``, 0700);
- removed when the trial ends, unless the site keeps it (``paths.keep_scratch``)
  for debugging. Checkpoints are not here: they live in the study's
  checkpoint folder, which a retry must find.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from batchml.errors import BatchmlError

logger = logging.getLogger(__name__)

# ${NAME:-default}: the one shell expansion site files use beyond $NAME and ${NAME}.
_WITH_DEFAULT = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*):-([^}]*)\}")


class ScratchError(BatchmlError, PermissionError):
    """The scratch folder cannot be made private to this user: someone else holds its path."""


def expand(path: str) -> Path:
    """A site path as the shell would expand it here: ``~``, ``$NAME``, ``${NAME:-default}``."""
    text = _WITH_DEFAULT.sub(lambda m: os.environ.get(m[1]) or m[2], path)
    expanded = os.path.expanduser(os.path.expandvars(text))
    if "$" in expanded or not os.path.isabs(expanded):
        raise ScratchError(
            f"paths.scratch_dir {path!r} expands to {expanded!r} on {os.uname().nodename}, "
            "not an absolute folder",
            hint="use an absolute path; variables as $NAME, ${NAME} or ${NAME:-default}",
        )
    return Path(expanded)


def private_root(base: Path) -> Path:
    """``base/batchml-<uid>``, made if missing; refused unless it is this user's private folder."""
    root = base / f"batchml-{os.getuid()}"
    with contextlib.suppress(FileExistsError):
        os.mkdir(root, 0o700)
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:  # a symlink (ELOOP), or a file (ENOTDIR)
        raise _refused(root, f"is not a folder ({exc.strerror})") from None
    try:
        found = os.fstat(fd)
    finally:
        os.close(fd)
    if found.st_uid != os.getuid():
        raise _refused(root, f"belongs to uid {found.st_uid}, not to you (uid {os.getuid()})")
    if found.st_mode & 0o077:
        raise _refused(
            root, f"is open to others (mode {stat.S_IMODE(found.st_mode):04o})", f"chmod 700 {root}"
        )
    return root


def _refused(root: Path, why: str, fix: str | None = None) -> ScratchError:
    return ScratchError(
        f"the trial scratch folder {root} {why}: batchml will not use it",
        hint=fix
        or f"remove it if it is yours, or point paths.scratch_dir of the site at a folder "
        f"only you can write (another user may have made {root} to catch your files)",
    )


@contextlib.contextmanager
def trial_scratch(base: str, label: str, keep: bool = False) -> Iterator[Path]:
    """A new private folder for one trial under the site's ``base``; removed unless ``keep``."""
    prefix = re.sub(r"[^A-Za-z0-9_.-]", "_", label)[:80].lstrip(".") + "-"  # never a path
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=private_root(expand(base))))
    try:
        yield folder
    finally:
        if keep:
            logger.info("kept the scratch folder of %s: %s", label, folder)
        else:
            shutil.rmtree(folder, ignore_errors=True)
            if folder.exists():  # a process the trial started is still writing there
                logger.warning("could not remove the scratch folder of %s: %s", label, folder)
