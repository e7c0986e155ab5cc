"""Provenance: file, folder, config and hub-model identities; the manifest hook; one real audit."""

from __future__ import annotations

import hashlib
import json

import pytest

from mnemoscope import provenance, rundir


def test_file_hash_is_sha256_of_the_bytes_and_changes_with_one_byte(tmp_path):
    path = tmp_path / "members.jsonl"
    data = bytes(range(256)) * 9000  # 2.3 MB: three 1 MiB chunks
    path.write_bytes(data)
    assert provenance.sha256_file(path) == hashlib.sha256(data).hexdigest()
    flipped = bytearray(data)
    flipped[1_500_000] ^= 1  # one bit of one byte, in the second chunk
    path.write_bytes(bytes(flipped))
    assert provenance.sha256_file(path) == hashlib.sha256(bytes(flipped)).hexdigest()
    assert provenance.sha256_file(path) != hashlib.sha256(data).hexdigest()


def test_directory_hash_follows_contents_and_names(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"\x00" * 100)
    (model / ".hidden").write_text("ignored")
    digest, files = provenance.sha256_directory(model)
    assert set(files) == {"config.json", "model.safetensors"}
    lines = "".join(f"{n}\t{hashlib.sha256(b).hexdigest()}\n" for n, b in
                    sorted([("config.json", b"{}"), ("model.safetensors", b"\x00" * 100)]))
    assert digest == hashlib.sha256(lines.encode()).hexdigest()
    (model / ".hidden").write_text("changed")
    assert provenance.sha256_directory(model)[0] == digest
    (model / "model.safetensors").write_bytes(b"\x00" * 99 + b"\x01")
    changed = provenance.sha256_directory(model)[0]
    assert changed != digest
    (model / "model.safetensors").rename(model / "weights.safetensors")
    assert provenance.sha256_directory(model)[0] not in (digest, changed)


def test_config_hash_ignores_key_order_but_not_values():
    a = {"seed": 0, "train": {"lr": 0.001, "steps": 10}}
    b = {"train": {"steps": 10, "lr": 0.001}, "seed": 0}
    assert provenance.config_sha256(a) == provenance.config_sha256(b)
    assert provenance.config_sha256(a) != provenance.config_sha256({**a, "seed": 1})
    assert provenance.config_sha256({"x": float("nan")}) == provenance.config_sha256({"x": None})


def test_inputs_are_found_anywhere_in_the_config(tmp_path, monkeypatch):
    members = tmp_path / "m.jsonl"
    members.write_text('{"text": "a"}\n')
    model = tmp_path / "net"
    model.mkdir()
    (model / "config.json").write_text("{}")
    cfg = {"seed": 0, "model": {"name": str(model), "device": "auto"},
           "data": {"members": str(members), "nonmembers": ""}, "verbmem": {"file": str(tmp_path / "absent.json")}}
    (tmp_path / "train").mkdir()  # a folder named like a setting's value
    (tmp_path / "train" / "big.bin").write_bytes(b"x")
    cfg["corpus"] = {"split": "train"}
    monkeypatch.chdir(tmp_path)
    inputs = provenance.hash_inputs(cfg)
    assert set(inputs) == {"data.members", "model.name"}  # "", "auto", "train" and a missing file are not inputs
    assert inputs["data.members"] == {"role": "data", "kind": "file", "path": str(members.resolve()),
                                      "bytes": members.stat().st_size,
                                      "sha256": hashlib.sha256(members.read_bytes()).hexdigest()}
    assert inputs["model.name"]["role"] == "model" and inputs["model.name"]["kind"] == "directory"


def test_hub_model_is_identified_by_its_cached_snapshot(tmp_path, monkeypatch):
    """A hub id is not re-read: the snapshot commit and the blob names (the hub's SHA-256) identify it."""
    import huggingface_hub.constants as hf_constants

    commit = "a" * 40
    weights_sha = hashlib.sha256(b"weights").hexdigest()
    repo = tmp_path / "models--org--tiny"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "blobs").mkdir()
    (repo / "blobs" / weights_sha).write_bytes(b"weights")
    (repo / "blobs" / "cfgblob").write_text("{}")
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    (snap / "model.safetensors").symlink_to(repo / "blobs" / weights_sha)
    (snap / "config.json").symlink_to(repo / "blobs" / "cfgblob")  # small files: git blob ids, not SHA-256
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path))
    entry = provenance.describe_input("model.name", "org/tiny")
    assert entry == {"role": "model", "kind": "hub", "id": "org/tiny", "revision": commit,
                     "files": {"model.safetensors": weights_sha}}
    assert provenance.describe_input("model.name", "org/absent") is None
    assert provenance.describe_input("data.members", "org/tiny") is None  # only model keys name hub ids


def test_packages_and_git():
    versions = provenance.package_versions()
    assert versions["mnemoscope"] and versions["torch"] and versions["numpy"]
    git = provenance.git_state()
    assert set(git) == {"revision", "dirty"}
    assert git["revision"] is None or len(git["revision"]) == 40


def test_manifest_records_the_run_inputs_hashed_when_the_run_started(tmp_path):
    data = tmp_path / "texts.txt"
    data.write_text("one\ntwo\n")
    cfg = {"seed": 3, "data": {"texts": str(data)}}
    run = rundir.Run(tmp_path / "run", cfg, "toy")
    data.write_text("changed after the run read it\n")
    run.finish(device="cpu")
    block = json.loads((tmp_path / "run" / "manifest.json").read_text())["provenance"]
    assert block["config_sha256"] == provenance.config_sha256(cfg)
    assert block["inputs"]["data.texts"]["sha256"] == hashlib.sha256(b"one\ntwo\n").hexdigest()
    assert block["git"]["revision"] == rundir.git_revision()


@pytest.mark.slow
def test_a_real_audit_records_its_data_and_model(saved_model_dir, tmp_path):
    from mnemoscope.cli import main

    members, nonmembers = tmp_path / "m.txt", tmp_path / "n.txt"
    members.write_text("Anna Berg was born in Lisbon.\nThe museum keeps old clocks.\nMarco joined Holt.\n")
    nonmembers.write_text("Lena Voss was born in Porto.\nThe library keeps old letters.\nRuth joined Iris.\n")
    out = tmp_path / "audit"
    assert main(["audit", "--model", str(saved_model_dir), "--members", str(members), "--nonmembers",
                 str(nonmembers), "--out", str(out), "--device", "cpu", "--n-boot", "10", "--no-extraction"]) == 0
    block = json.loads((out / "manifest.json").read_text())["provenance"]
    assert block["inputs"]["data.members"]["sha256"] == hashlib.sha256(members.read_bytes()).hexdigest()
    assert block["inputs"]["data.nonmembers"]["sha256"] == hashlib.sha256(nonmembers.read_bytes()).hexdigest()
    weights = block["inputs"]["model.name"]
    assert weights["role"] == "model" and weights["kind"] == "directory"
    assert weights["files"]["model.safetensors"] == provenance.sha256_file(saved_model_dir / "model.safetensors")
    config = __import__("yaml").safe_load((out / "config.yaml").read_text())
    assert block["config_sha256"] == provenance.config_sha256(config)
