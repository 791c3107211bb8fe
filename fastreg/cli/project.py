"""The project a command works in, found from the current directory, with the clone's Git
set-up (merge driver, pre-push hook: repo/gitsetup.py) put in place on the way: a fresh clone
gets it at its first fastreg command."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastreg.repo.project import Project


def find_project() -> Project:
    from fastreg.repo import gitsetup
    from fastreg.repo.project import Project

    project = Project.find()
    gitsetup.set_up(project)
    return project
