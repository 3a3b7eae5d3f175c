"""DuckDB's answer to a query and the bytes it read from the files, as Athena's "bytes scanned"
would count them: the files are read through a filesystem that counts what DuckDB reads
(`counting://<absolute path>`). Prints one JSON object: {"rows": N, "bytes_read": B}.

Usage: python duckdb_bytes.py "<SQL naming counting:///... paths>"
"""

import json
import sys

import duckdb
from fsspec.implementations.local import LocalFileSystem


class CountingFileSystem(LocalFileSystem):
    protocol = "counting"
    bytes_read = 0

    def _open(self, path, mode="rb", **kwargs):
        return CountedFile(super()._open(path, mode, **kwargs))


class CountedFile:
    """A file whose reads are added to CountingFileSystem.bytes_read."""

    def __init__(self, inner):
        self.inner = inner

    def read(self, size=-1):
        data = self.inner.read(size)
        CountingFileSystem.bytes_read += len(data)
        return data

    def readinto(self, buffer):
        count = self.inner.readinto(buffer)
        CountingFileSystem.bytes_read += count
        return count

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.inner.close()


def main():
    connection = duckdb.connect()
    connection.register_filesystem(CountingFileSystem())
    rows = connection.sql(sys.argv[1]).fetchall()
    print(json.dumps({"rows": len(rows), "bytes_read": CountingFileSystem.bytes_read}))


if __name__ == "__main__":
    main()
