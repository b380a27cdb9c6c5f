"""Train with BasicSR's pipeline and the plugin registered, with all of BasicSR's flags.

``python msrn_plugin/train.py -opt options/train_MSRN_x4.yml [--auto_resume]``; outputs under the current folder.
"""
import os
import sys
from typing import List, Optional

if __name__ == '__main__' and not __package__:  # run as a file: don't let msrn_plugin/*.py shadow top-level modules
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or '.') != os.path.dirname(os.path.abspath(__file__))]

from msrn_plugin.utils.pipeline import cli_main  # noqa: E402


def main(argv: Optional[List[str]] = None) -> int:
    """Run BasicSR's ``train_pipeline`` with ``root_path`` = the current directory.

    Args:
        argv (list[str] | None): Arguments without the program name. Default: ``sys.argv[1:]``.

    Returns:
        int: Exit status: 0, or 2 when the option file, the data or a checkpoint is refused (message on stderr).
    """
    return cli_main('train', argv)


if __name__ == '__main__':
    sys.exit(main())
