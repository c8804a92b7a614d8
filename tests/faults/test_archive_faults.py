"""ingest's archive and download under faults: each refused in one line naming what is wrong."""

from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path

import pytest

from stages.lib import cifar_pickles, dataset
from tests.support.faults import Expect, Sandbox, assert_clean

pytestmark = [pytest.mark.faults, pytest.mark.slow]
BAD_MD5 = "0" * 32


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def good_archive(sb: Sandbox, level: int = 6) -> Path:
    """A real-layout tarball of the sandbox's own raw data."""
    path = sb.root / "cifar-100-python.tar.gz"
    cifar_pickles.write_pickles(sb.root / "pickles", dataset.read_raw(sb.root / "data" / "raw"))
    with tarfile.open(path, "w:gz", compresslevel=level) as tar:
        tar.add(sb.root / "pickles" / "cifar-100-python", arcname="cifar-100-python")
    return path


def ingest_archive(sb: Sandbox, path: Path, md5_: str | None, **expect) -> Expect:
    sb.params(data={"source": "archive", "archive": {"path": str(path.relative_to(sb.root)), "md5": md5_}})
    return Expect(sb.stage("ingest"), **expect)


# Each: the archive (path, md5) a case makes in its sandbox.
def missing(sb):
    return sb.root / "nope.tar.gz", BAD_MD5


def is_directory(sb):  # item 10
    (sb.root / "adir.tar.gz").mkdir()
    return sb.root / "adir.tar.gz", BAD_MD5


def not_a_tarball(sb):
    junk = sb.root / "junk.tar.gz"
    junk.write_bytes(b"not a tarball at all")
    return junk, md5(junk)


def wrong_md5(sb):
    return good_archive(sb), BAD_MD5


def truncated(sb):
    good = good_archive(sb)
    good.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    return good, md5(good)


def corrupt_crc(sb):  # item 5: a changed byte that still inflates; md5 taken from the corrupt file
    good = good_archive(sb, level=0)
    body = bytearray(good.read_bytes())
    body[len(body) // 2] ^= 0xFF
    good.write_bytes(bytes(body))
    return good, md5(good)


def without_cifar_dir(sb):
    path = sb.root / "other.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.add(sb.root / "params.yaml", arcname="other/params.yaml")
    return path, md5(path)


def md5_too_short(sb):  # item 11: refused when params are read, before hashing
    good = good_archive(sb)
    return good, md5(good)[:31]


@pytest.mark.parametrize(
    ("archive", "words", "absent"),
    [
        pytest.param(missing, ("file not found",), (), id="archive_missing"),
        pytest.param(is_directory, ("directory",), ("file not found",), id="archive_is_directory"),
        pytest.param(not_a_tarball, ("cannot be unpacked",), (), id="archive_not_a_tarball"),
        pytest.param(wrong_md5, ("md5 is",), (), id="archive_wrong_md5"),
        pytest.param(truncated, ("cannot be unpacked",), (), id="archive_truncated"),
        pytest.param(corrupt_crc, ("CRC",), (), id="archive_corrupt_crc"),
        pytest.param(without_cifar_dir, ("holds no cifar-100-python",), (), id="archive_without_cifar_dir"),
        pytest.param(md5_too_short, ("data.archive.md5",), ("md5 is",), id="md5_wrong_length"),
    ],
)
def test_bad_archive_is_refused_in_one_line(sb, archive, words, absent):
    path, md5_ = archive(sb)
    assert_clean(sb, ingest_archive(sb, path, md5_, words=words, absent=absent))


def test_md5_upper_case_is_accepted(sb):  # item 11
    good = good_archive(sb)
    assert_clean(sb, ingest_archive(sb, good, md5(good).upper(), rc=0))


def test_download_unreachable(sb):
    sb.params(data={"source": "cifar100", "download": {"url": "http://127.0.0.1:9/cifar-100-python.tar.gz"}})
    assert_clean(sb, Expect(sb.stage("ingest"), words=("download of",)))
