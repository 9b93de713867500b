"""Where a nightly job got to, so that a run stopped halfway (a deploy, a crash) goes on from
there when it runs again the same night instead of starting over."""

from __future__ import annotations

from django.db import models


class JobCursor(models.Model):
    name = models.CharField(max_length=60, unique=True)
    # The night (UTC date) the position belongs to; another night starts from the beginning.
    run_date = models.DateField()
    # The last primary key done; the next step starts after it.
    position = models.BigIntegerField(default=0)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name} {self.run_date} @{self.position}"
