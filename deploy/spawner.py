"""Each student's JupyterLab as their own Linux user, in a memory and process cgroup of its own.

JupyterHub's ``LocalProcessSpawner`` starts ``jupyterhub-singleuser`` as the user but enforces none of
``Spawner.mem_limit``: on one machine shared by a class, one student's notebook allocating without end would take
the memory of everyone, the hub and the grading service included. :class:`ClassSpawner` puts each server, and so
every kernel and process it starts, into a cgroup limited to ``mem_limit`` (memory-backed files included) and
``max_processes``: a notebook over the limit has its kernel killed by the kernel's OOM killer inside that cgroup,
and the student's server and everyone else go on.

The cgroup is made with :class:`autograder.cgroups.KernelCgroup` (cgroup v1, or v2 with the controllers
delegated), the grader's own code for the same job. Where no cgroup can be made (not root, no delegation) the server
runs without a limit, and the hub's log says so. Written here because no spawner on PyPI fits: systemdspawner needs
systemd as PID 1, and the container spawners need a container runtime.
"""

from __future__ import annotations

import asyncio

from jupyterhub.spawner import LocalProcessSpawner
from traitlets import Int

from autograder.cgroups import KernelCgroup


class ClassSpawner(LocalProcessSpawner):
    """``LocalProcessSpawner`` that enforces ``mem_limit`` and a process limit with a cgroup per server."""

    max_processes = Int(
        1024, help="Most processes and threads a user's server and its kernels may run at once (pids cgroup)."
    ).tag(config=True)

    _cgroup: KernelCgroup | None = None

    async def start(self):
        url = await super().start()
        if self.mem_limit:
            cgroup = KernelCgroup.create(
                int(self.mem_limit) // 2**20, self.max_processes, prefix="hub-" + self.user.name
            )
            if cgroup is None:
                self.log.warning("no cgroup could be made: %s's server runs without a memory limit", self.user.name)
            else:
                try:
                    cgroup.add(self.pid)
                except OSError as exc:
                    cgroup.remove()
                    self.log.warning("%s's server runs without a memory limit: %s", self.user.name, exc)
                else:
                    self._cgroup = cgroup
                    self.log.info(
                        "%s's server (pid %s) limited to %s MB", self.user.name, self.pid, int(self.mem_limit) // 2**20
                    )
        return url

    async def stop(self, now=False):
        try:
            await super().stop(now=now)
        finally:
            await self._remove_cgroup()

    async def poll(self):
        # a server that exited on its own is not stopped through stop(): its cgroup goes when the hub notices
        status = await super().poll()
        if status is not None:
            await self._remove_cgroup()
        return status

    async def _remove_cgroup(self) -> None:
        if self._cgroup is not None:
            cgroup, self._cgroup = self._cgroup, None
            # What the stopped server left running is the student's and goes with it: a model server a lesson
            # started in a session of its own, a process started with nohup. Then the cgroup itself (remove() waits
            # up to 5 s for the killed processes to leave: not on the hub's event loop).
            killed = cgroup.kill()
            if killed:
                self.log.info("stopped %s process(es) %s's server left running", killed, self.user.name)
            await asyncio.to_thread(cgroup.remove)
