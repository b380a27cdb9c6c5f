"""The lazy BasicSR ``FileClient`` of the plugin's datasets (created on first read, in the loader's worker)."""
from basicsr.utils import FileClient
from typing import Mapping, Optional


class FileClientMixin:
    """Gives a dataset ``self.io_backend_opt`` and :meth:`read_bytes`, as BasicSR's datasets set them up by hand.

    The client is made on the first read, not in ``__init__``, so that an LMDB is opened in each data-loader worker
    rather than pickled from the main process.
    """

    file_client: Optional[FileClient] = None
    io_backend_opt: dict

    def init_io_backend(self, io_backend: Mapping, lmdb_folders: Optional[Mapping[str, str]] = None) -> None:
        """Copy the ``io_backend`` options; for LMDB, add BasicSR's ``db_paths``/``client_keys``.

        Args:
            io_backend (Mapping): The dataset's ``io_backend`` options (not modified).
            lmdb_folders (Mapping[str, str] | None): Client key -> ``.lmdb`` folder, e.g. ``{'gt': dataroot_gt}``;
                used with ``type: lmdb`` only. Default: None.
        """
        self.file_client = None
        self.io_backend_opt = dict(io_backend)
        if self.io_backend_opt.get('type') == 'lmdb' and lmdb_folders:
            self.io_backend_opt['db_paths'] = list(lmdb_folders.values())
            self.io_backend_opt['client_keys'] = list(lmdb_folders)

    def read_bytes(self, path: str, client_key: str = 'gt') -> bytes:
        """The bytes of a file (disk) or a key (LMDB), creating the client on first use.

        Args:
            path (str): File path, or LMDB key.
            client_key (str): Which database, for LMDB ('gt', 'lq'). Default: 'gt'.

        Returns:
            bytes: The stored bytes.
        """
        if self.file_client is None:
            backend_opt = dict(self.io_backend_opt)
            self.file_client = FileClient(backend_opt.pop('type'), **backend_opt)
        return self.file_client.get(path, client_key)
