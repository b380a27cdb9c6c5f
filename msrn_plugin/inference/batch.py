"""Run a function over a folder of images: one bad file never stops the run, and every failure is reported."""
import logging
import os
from dataclasses import dataclass, field
from os import PathLike
from tqdm import tqdm
from typing import Any, Callable, Iterable, List, Optional, Tuple, Type, Union

from msrn_plugin.utils.image_io import is_image_file
from msrn_plugin.utils.misc import PathType
from msrn_plugin.utils.outputs import check_no_overwrite

logger = logging.getLogger('basicsr')


@dataclass
class BatchReport:
    """What :func:`process_folder` did.

    Args:
        succeeded (list[str]): Files ``fn`` processed.
        failed (list[tuple[str, str]]): ``(file, message)`` for each file ``fn`` raised on (the message without a
            leading ``<file>: ``).
        skipped (list[tuple[str, str]]): ``(file, reason)`` for files that are not images.
        results (list[Any]): What ``fn`` returned, in the order of ``succeeded``.
    """

    succeeded: List[str] = field(default_factory=list)
    failed: List[Tuple[str, str]] = field(default_factory=list)
    skipped: List[Tuple[str, str]] = field(default_factory=list)
    results: List[Any] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 when every image was processed (and there was at least one), else 1."""
        return 1 if self.failed or not self.succeeded else 0

    def summary(self) -> str:
        """A multi-line report: counts, then every failure and skipped file with its reason."""
        total = len(self.succeeded) + len(self.failed)
        lines = [f'{len(self.succeeded)} of {total} images processed, {len(self.failed)} failed, '
                 f'{len(self.skipped)} files skipped (not images).']
        if not total:
            lines.append('No image to process: check the input path and the file extensions.')
        if self.failed:
            lines.append('Failed:')
            lines += [f'  {path}: {message}' for path, message in self.failed]
        if self.skipped:
            lines.append('Skipped:')
            lines += [f'  {path}: {reason}' for path, reason in self.skipped]
        return '\n'.join(lines)


def collect_inputs(inputs: Union[PathType, Iterable[PathType]],
                   recursive: bool = False) -> Tuple[List[str], List[Tuple[str, str]]]:
    """List the images to process.

    Args:
        inputs (str | PathLike | Iterable): One image file, a folder, or an iterable of files.
        recursive (bool): Also list sub-folders of a folder. Default: False.

    Returns:
        tuple[list[str], list[tuple[str, str]]]: Image files (sorted for a folder), and ``(file, reason)`` for files
        that are skipped because they are not images. Hidden files (names starting with ``.``, such as the
        temporary files of an interrupted atomic write) are ignored.

    Raises:
        FileNotFoundError: If ``inputs`` is a path that does not exist.
    """
    if isinstance(inputs, (str, PathLike)):
        path = os.fspath(inputs)
        if os.path.isdir(path):
            files = []
            for root, dirs, names in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith('.')) if recursive else []
                files += [os.path.join(root, n) for n in names if not n.startswith('.')]
            files = sorted(files)
        elif os.path.exists(path):
            files = [path]
        else:
            raise FileNotFoundError(f'{path}: no such file or folder; check the input path.')
    else:
        files = [os.fspath(p) for p in inputs]
    images = [f for f in files if is_image_file(f)]
    skipped = [(f, f'not an image file (extension {os.path.splitext(f)[1] or "none"})') for f in files
               if not is_image_file(f)]
    return images, skipped


def _describe(err: BaseException, path: str) -> str:
    """The error message without a leading ``<path>: `` (the report names the file); type added if unexpected."""
    message = str(err).strip() or type(err).__name__
    if message.startswith(f'{path}: '):
        message = message[len(path) + 2:]
    return message if isinstance(err, (OSError, ValueError)) else f'{type(err).__name__}: {message}'


def process_folder(inputs: Union[PathType, Iterable[PathType]],
                   fn: Callable[[str], Any],
                   desc: str = 'Processing',
                   recursive: bool = False,
                   catch: Tuple[Type[BaseException], ...] = (Exception, ),
                   show_progress: bool = True,
                   output_for: Optional[Callable[[str], PathType]] = None) -> BatchReport:
    """Call ``fn(path)`` on every image; record failures and go on.

    Args:
        inputs (str | PathLike | Iterable): One image file, a folder, or an iterable of files.
        fn (Callable[[str], Any]): Processes one file; raises on failure. It should write its outputs with
            :func:`msrn_plugin.utils.image_io.write_image` so that nothing partial is left under a final name.
        desc (str): Progress-bar label. Default: 'Processing'.
        recursive (bool): Also process sub-folders of a folder. Default: False.
        catch (tuple[type]): Exceptions recorded as a per-file failure; others (and KeyboardInterrupt) stop the
            run. Default: (Exception, ).
        show_progress (bool): Show a tqdm progress bar. Default: True.
        output_for (Callable[[str], str | PathLike] | None): The file ``fn`` writes for an input. When given, every
            planned output is checked against every input (real paths, links resolved) before ``fn`` first runs,
            and a run that would replace one of its own inputs is refused. Default: None.

    Returns:
        BatchReport: Succeeded, failed and skipped files; ``exit_code`` is 1 if any file failed or none was
        processed.

    Raises:
        FileNotFoundError: If ``inputs`` is a path that does not exist.
        ValueError: If an output of ``output_for`` would replace an input (nothing processed or written).
    """
    images, skipped = collect_inputs(inputs, recursive)
    if output_for is not None:
        check_no_overwrite([output_for(path) for path in images], images,
                           hint='Choose another output folder (or another output name).')
    report = BatchReport(skipped=skipped)
    for path, reason in skipped:
        logger.warning(f'Skipping {path}: {reason}.')
    for path in tqdm(images, desc=desc, unit='image', disable=not show_progress):
        try:
            result = fn(path)
        except catch as err:
            report.failed.append((path, _describe(err, path)))
            logger.error(f'{path}: {report.failed[-1][1]}')
            continue
        report.succeeded.append(path)
        report.results.append(result)
    log = logger.warning if report.exit_code else logger.info
    log(report.summary())
    return report


__all__ = ['BatchReport', 'collect_inputs', 'process_folder']
