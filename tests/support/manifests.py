"""`kustomize build` for the subset our kustomizations use, so tests can read the rendered
manifests without kustomize: resources (files and directories), namespace, images, and
strategic-merge patches that name their target by kind and name. Anything else is refused
rather than ignored, so a new field cannot pass unrendered."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

Document = dict[str, Any]

_SUPPORTED = {"apiVersion", "kind", "resources", "namespace", "images", "patches"}
_CLUSTER_SCOPED = {"Namespace"}
_CONTAINER_LISTS = ("containers", "initContainers")


def render(directory: Path) -> list[Document]:
    kustomization = _load_one(directory / "kustomization.yaml")
    unsupported = set(kustomization) - _SUPPORTED
    if unsupported:
        raise ValueError(f"{directory}: the test renderer cannot apply {sorted(unsupported)}")
    documents: list[Document] = []
    for entry in kustomization.get("resources", []):
        path = directory / entry
        documents += render(path) if path.is_dir() else _load_all(path)
    for patch in kustomization.get("patches", []):
        if set(patch) != {"path"}:
            raise ValueError(f"{directory}: only `path` patches are supported, got {patch}")
        documents = _apply_patch(documents, _load_one(directory / patch["path"]))
    if namespace := kustomization.get("namespace"):
        for document in documents:
            if document["kind"] not in _CLUSTER_SCOPED:
                document["metadata"]["namespace"] = namespace
    for image in kustomization.get("images", []):
        _set_image(documents, image)
    return documents


def one(documents: list[Document], kind: str) -> Document:
    matches = [document for document in documents if document["kind"] == kind]
    if len(matches) != 1:
        raise LookupError(f"expected one {kind}, found {len(matches)}")
    return matches[0]


def containers(pod_spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for key in _CONTAINER_LISTS:
        yield from pod_spec.get(key, [])


def split_image(reference: str) -> tuple[str, str | None, str | None]:
    """`registry:5000/name:tag@sha256:...` -> (name, tag, digest)."""
    name, _, digest = reference.partition("@")
    tag = None
    last_colon = name.rfind(":")
    if last_colon > name.rfind("/"):
        name, tag = name[:last_colon], name[last_colon + 1 :]
    return name, tag, digest or None


def _load_one(path: Path) -> Document:
    document: Document = yaml.safe_load(path.read_text(encoding="utf-8"))
    return document


def _load_all(path: Path) -> list[Document]:
    with path.open(encoding="utf-8") as handle:
        return [document for document in yaml.safe_load_all(handle) if document]


def _apply_patch(documents: list[Document], patch: Document) -> list[Document]:
    def is_target(document: Document) -> bool:
        return (
            document["kind"] == patch["kind"]
            and document["metadata"]["name"] == patch["metadata"]["name"]
        )

    targets = [document for document in documents if is_target(document)]
    if len(targets) != 1:
        raise LookupError(f"patch {patch['kind']}/{patch['metadata']['name']} matches {targets}")
    return [_merge(document, patch) if is_target(document) else document for document in documents]


def _merge(base: Any, patch: Any) -> Any:
    """Maps merge key by key; lists of named items (containers, env, volumes) merge by name,
    as Kubernetes' own types declare; any other list is replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for key, value in patch.items():
            merged[key] = _merge(base[key], value) if key in base else copy.deepcopy(value)
        return merged
    if isinstance(base, list) and isinstance(patch, list) and _named(base) and _named(patch):
        patches = {item["name"]: item for item in patch}
        merged_items = [_merge(item, patches.pop(item["name"], {})) for item in base]
        return merged_items + [copy.deepcopy(item) for item in patches.values()]
    return copy.deepcopy(patch)


def _named(items: list[Any]) -> bool:
    return bool(items) and all(isinstance(item, dict) and "name" in item for item in items)


def _set_image(documents: list[Document], image: dict[str, str]) -> None:
    for document in documents:
        pod_spec = document.get("spec", {}).get("template", {}).get("spec", {})
        for container in containers(pod_spec):
            name, tag, digest = split_image(container["image"])
            if name != image["name"]:
                continue
            name = image.get("newName", name)
            if "digest" in image:
                container["image"] = f"{name}@{image['digest']}"
                continue
            tag = image.get("newTag", tag)
            container["image"] = (
                name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
            )
