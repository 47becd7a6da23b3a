"""The build id is the saga's code: words and layout keep it, a change of code makes a new one."""

from __future__ import annotations

from pathlib import Path

from infra import deployment
from ops.bad_builds import build_id_of, copy_checkout


def test_words_and_layout_keep_the_build_and_code_makes_a_new_one(tmp_path: Path) -> None:
    copy = copy_checkout(tmp_path / "copy")
    saga = copy / "workflows" / "order_saga.py"
    models = copy / "domain" / "order.py"  # imported by the saga: part of its build
    as_is = build_id_of(copy)

    saga.write_text(
        saga.read_text().replace('"""Places one order', '"""Places, once, one order', 1)
        + "\n# A comment at the end.\n"
    )
    reworded = build_id_of(copy)
    models.write_text(models.read_text() + "\nMAX_NOTE_LENGTH = 500\n")
    changed = build_id_of(copy)

    assert as_is == deployment.build_id()
    assert reworded == as_is
    assert changed != as_is


def test_a_label_names_a_release_of_the_same_code() -> None:
    assert deployment.build_id("2026-12-06") == f"2026-12-06-{deployment.build_id()}"


def test_only_the_projects_modules_make_the_build() -> None:
    assert deployment._module_file("workflows.order_saga") is not None
    assert deployment._module_file("pydantic") is None
    assert deployment._module_file("temporalio.workflow") is None
