"""``backline releases …``: run the delivery worker, look at a job (issue 6)."""

from __future__ import annotations

from uuid import UUID

import click


def register(main: click.Group) -> None:
    @main.group()
    def releases() -> None:
        """Releases and their delivery to stores."""

    @releases.command("worker")
    def releases_worker() -> None:
        """Run the delivery worker until SIGTERM (several may run; leases share the jobs)."""
        from backline.infra.release_worker import main as run_worker

        run_worker()

    @releases.command("job")
    @click.argument("job_id")
    def releases_job(job_id: str) -> None:
        """Print a delivery job's status per store (from the event store)."""
        from backline.domain.delivery import ProcessingJob
        from backline.infra.container import Container
        from backline.infra.settings import Settings

        try:
            jid = UUID(job_id)
        except ValueError:
            raise click.BadParameter("JOB_ID must be a UUID") from None
        c = Container.build(Settings.from_env())
        try:
            job = c.store.find(jid, ProcessingJob)
            if job is None:
                raise click.ClickException(f"no job {job_id}")
            click.echo(f"{job.id} {job.kind} {job.status} release={job.release_id}")
            for store, s in sorted(job.stores.items()):
                error = f" error={s['error']}" if s["error"] else ""
                click.echo(f"  {store}: {s['status']} attempts={s['attempts']}{error}")
            if job.refunded:
                click.echo(f"  refunded {job.refunded} credits")
        finally:
            c.close()
