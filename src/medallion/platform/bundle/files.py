"""Reading a bundle's files: `databricks.yml`, the files its `include:` globs name, merged."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from medallion.lakehouse.errors import BundleError
from medallion.lakehouse.issues import BundleIssue
from medallion.lakehouse.yaml_positions import Node, child_path, load_yaml_file, relative_name
from medallion.platform.bundle.merge import merge

ROOT_FILE_NAMES = ("databricks.yml", "databricks.yaml", "bundle.yml", "bundle.yaml")
_RESOURCE_NOUNS = {"jobs": "job", "pipelines": "pipeline", "schemas": "schema", "volumes": "volume"}


@dataclass(frozen=True)
class BundleFiles:
    """The parsed files of a bundle (root file first) and their merge, before any target."""

    root: Path
    trees: dict[str, Node]
    merged: Node
    issues: tuple[BundleIssue, ...]
    unreadable: tuple[str, ...] = ()

    @property
    def root_file(self) -> str:
        """The root configuration file, relative to the bundle root."""
        return next(iter(self.trees), ROOT_FILE_NAMES[0])


def find_root_file(root: Path) -> Path:
    """Return the bundle's root configuration file (`databricks.yml`)."""
    for name in ROOT_FILE_NAMES:
        candidate = root / name
        if candidate.is_file():
            return candidate
    raise BundleError(
        f"{root}: no databricks.yml found; a bundle root holds a databricks.yml "
        "with at least `bundle: {name: ...}`"
    )


def _expand_include(root: Path, include: Node | None, issues: list[BundleIssue]) -> list[Path]:
    """Expand the `include:` globs (relative to the root, each sorted) into file paths."""
    if include is None or include.value is None:
        return []
    if not isinstance(include.value, list):
        issues.append(
            BundleIssue(include.file, include.line, "include", "include must be a list of globs")
        )
        return []
    found: list[Path] = []
    for item in include.value:
        pattern = item.value
        if not isinstance(pattern, str) or not pattern:
            issues.append(
                BundleIssue(item.file, item.line, item.path, "an include must be a glob string")
            )
            continue
        try:
            matches = sorted(path for path in root.glob(pattern) if path.is_file())
        except (ValueError, NotImplementedError) as exc:
            message = f"include {pattern!r} is not a glob relative to the bundle root ({exc})"
            issues.append(BundleIssue(item.file, item.line, item.path, message))
            continue
        if not matches:
            issues.append(
                BundleIssue(
                    item.file,
                    item.line,
                    item.path,
                    f"include {pattern!r} matches no file; fix the glob or remove it",
                    "warning",
                )
            )
        for path in matches:
            if path.suffix not in {".yml", ".yaml"}:
                message = f"include {pattern!r} matches {path.name}, which is not a YAML file"
                issues.append(BundleIssue(item.file, item.line, item.path, message, "warning"))
            elif path not in found:
                found.append(path)
    return found


def _check_unique_resources(
    tree: Node, owners: dict[tuple[str, str], Node], issues: list[BundleIssue]
) -> None:
    """Report a resource key (e.g. a job) that a second file defines again."""
    resources = tree.get("resources")
    if resources is None or not isinstance(resources.value, dict):
        return
    for kind, group in resources.value.items():
        if not isinstance(group.value, dict):
            continue
        for key, resource in group.value.items():
            first = owners.get((kind, key))
            if first is None:
                owners[(kind, key)] = resource
                continue
            noun = _RESOURCE_NOUNS.get(kind, kind)
            message = (
                f"{noun} {key!r} is defined in both {first.file}:{first.line} and "
                f"{resource.file}:{resource.line}; resource keys must be unique across files, "
                "rename or remove one"
            )
            path = child_path(child_path("resources", kind), key)
            issues.append(BundleIssue(resource.file, resource.line, path, message))


def read_bundle_files(root: Path) -> BundleFiles:
    """Parse `databricks.yml` and every included file, and merge their top-level mappings."""
    root = Path(root).resolve()
    root_path = find_root_file(root)
    root_tree, parsed_issues = load_yaml_file(root_path, root)
    issues = list(parsed_issues)
    root_name = relative_name(root_path, root)
    if root_tree is None:
        return BundleFiles(root, {}, Node({}, root_name, 1, ""), tuple(issues), (root_name,))
    trees = {root_name: root_tree}
    unreadable: list[str] = []
    for path in _expand_include(root, root_tree.get("include"), issues):
        if path == root_path:
            continue
        tree, file_issues = load_yaml_file(path, root)
        issues.extend(file_issues)
        if tree is None:
            unreadable.append(relative_name(path, root))
            continue
        nested = tree.get("include")
        if nested is not None:
            message = f"include is only read from {root_name}; move these globs there"
            issues.append(BundleIssue(nested.file, nested.line, "include", message))
        trees[relative_name(path, root)] = tree
    owners: dict[tuple[str, str], Node] = {}
    merged: Node = root_tree
    for tree in trees.values():
        _check_unique_resources(tree, owners, issues)
        if tree is not root_tree:
            merged = merge(merged, tree, issues) or merged
    return BundleFiles(root, trees, merged, tuple(issues), tuple(unreadable))
