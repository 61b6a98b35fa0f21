"""Each trial's scratch folder: the user's own, unpredictable, gone when the trial ends.

Why: the scratch root is shared with strangers (/tmp on a login node, and the
batch node's $TMPDIR may be shared by several users' jobs). A path others can
predict there is theirs to prepare: a symlink planted where a trial writes
its log makes the trial overwrite a file of its own user, and a folder they
own makes every trial fail. So, where the trial runs:

- the site's ``paths.scratch_dir`` is expanded there (a batch job's $TMPDIR is
  its own, not the driver's);
- inside it, one folder per user, ``batchml-<uid>``, made and checked private
  (see batchml._fs): a link, another user's folder or one open to
  others there is refused, naming the path and the fix, rather than used;
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
import tempfile
from collections.abc import Iterator
from pathlib import Path

from batchml._fs import PrivateFolderError, private_folder
from batchml.backends._worker import expand_path

logger = logging.getLogger(__name__)


def expand(path: str) -> Path:
    """A site path as the shell would expand it here: ``~``, ``$NAME``, ``${NAME:-default}``."""
    expanded = expand_path(path)
    if "$" in expanded or not os.path.isabs(expanded):
        raise PrivateFolderError(
            f"paths.scratch_dir {path!r} expands to {expanded!r} on {os.uname().nodename}, "
            "not an absolute folder",
            hint="use an absolute path; variables as $NAME, ${NAME} or ${NAME:-default}",
        )
    return Path(expanded)


@contextlib.contextmanager
def trial_scratch(base: str, label: str, keep: bool = False) -> Iterator[Path]:
    """A new private folder for one trial under the site's ``base``; removed unless ``keep``."""
    prefix = re.sub(r"[^A-Za-z0-9_.-]", "_", label)[:80].lstrip(".") + "-"  # never a path
    root = private_folder(expand(base) / f"batchml-{os.getuid()}", "paths.scratch_dir")
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=root))
    try:
        yield folder
    finally:
        if keep:
            logger.info("kept the scratch folder of %s: %s", label, folder)
        else:
            shutil.rmtree(folder, ignore_errors=True)
            if folder.exists():  # a process the trial started is still writing there
                logger.warning("could not remove the scratch folder of %s: %s", label, folder)
