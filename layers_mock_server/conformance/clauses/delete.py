"""Delete (spec: deleteInfluencer): a soft delete that answers 200 {influencerId, status:
"deleted", deletedAt}; afterwards the influencer is gone from GET, PATCH and every list, and a
second DELETE is 404. These run last on the sample influencer.
"""

from __future__ import annotations

from .. import contract as c
from ..clause import Needs, Section
from ..exchange import Exchange
from ..report import NotChecked, Violation
from ..session import Session, body_of, expect_error
from .lists import list_ids

SECTION = Section("delete", "Delete")


def _delete_sample(s: Session) -> Exchange:
    """The sample influencer's DELETE (sent once, by whichever delete clause runs first)."""
    if s.sample_deleted is None:
        job = s.sample_job()
        path = c.influencer_path(job.influencer_id)
        s.sample_deleted = s.call("DELETE", path, {"reason": "conformance run"})
    return s.sample_deleted


@SECTION.clause("influencers.delete-archives", needs=Needs(sample=True))
def delete_archives(s: Session) -> None:
    """DELETE answers 200 {influencerId, status: "deleted", deletedAt}."""
    job = s.sample_job()
    ex = _delete_sample(s)
    body = body_of(ex)
    want = {"influencerId": job.influencer_id, "status": "deleted"}
    if ex.status != 200 or {k: body.get(k) for k in want} != want:
        raise Violation("influencers.delete-archives", f"DELETE answered {ex.status}", ex)
    if not c.TIMESTAMP.match(str(body.get("deletedAt"))):
        raise Violation("influencers.delete-archives", "deletedAt is not a timestamp", ex)


@SECTION.clause("influencers.deleted-is-gone", needs=Needs(sample=True))
def deleted_is_gone(s: Session) -> None:
    """A deleted influencer is gone: GET and PATCH are 404, and no list shows it."""
    clause = "influencers.deleted-is-gone"
    job = s.sample_job()
    if _delete_sample(s).status != 200:
        raise NotChecked("the DELETE was not accepted")
    path = c.influencer_path(job.influencer_id)
    expect_error(clause, s.get(path), 404, "NOT_FOUND")
    expect_error(clause, s.call("PATCH", path, {"name": "Conformance Gone"}), 404, "NOT_FOUND")
    for query in ("", "&status=ready", "&status=failed"):
        ex = s.get(c.create_path(s.project) + f"?limit={c.LIMIT_MAX}{query}")
        if job.influencer_id in list_ids(ex):
            raise Violation(clause, "the deleted influencer is still listed", ex)


@SECTION.clause("influencers.delete-twice-404", needs=Needs(sample=True))
def delete_twice_404(s: Session) -> None:
    """Deleting twice (without an Idempotency-Key) is 404, not 200: there is no undelete."""
    job = s.sample_job()
    if _delete_sample(s).status != 200:
        raise NotChecked("the DELETE was not accepted")
    ex = s.call("DELETE", c.influencer_path(job.influencer_id))
    expect_error("influencers.delete-twice-404", ex, 404, "NOT_FOUND")
