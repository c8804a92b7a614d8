"""bench/train_throughput.py takes the real dataset from --archive or $CIFAR100_DIR, default ../shared/cifar100."""

from bench import train_throughput as bench
from tests.conftest import ROOT


def test_the_default_is_relative_to_the_project():
    assert bench.DATA_DIR_DEFAULT == "../shared/cifar100"
    expected = ROOT / "../shared/cifar100" / bench.ARCHIVE_NAME
    assert bench.default_archive({}) == (expected if expected.is_file() else None)


def test_cifar100_dir_points_elsewhere(tmp_path):
    assert bench.default_archive({"CIFAR100_DIR": str(tmp_path)}) is None  # no archive there: synthetic data
    (tmp_path / bench.ARCHIVE_NAME).write_bytes(b"")
    assert bench.default_archive({"CIFAR100_DIR": str(tmp_path)}) == tmp_path / bench.ARCHIVE_NAME
