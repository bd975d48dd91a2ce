"""Pages of a large table's ids: counted no further than needed, read from the nearer end."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.core.paginator import Page, Paginator
from django.db.models import QuerySet

if TYPE_CHECKING:
    _Paginator = Paginator[Any]
else:
    _Paginator = Paginator  # not subscriptable at run time


class IdPaginator(_Paginator):
    """Pages of an id queryset (ordered, one column) with its count given.

    ``more`` says the count is a lower bound: the matches were counted only up to some rows
    past the page asked for (``page_of``), so there are at least ``count``. A page in the
    second half of an exactly counted list is read backwards from the end, so the last
    page of 100,000 rows skips 50 of them, not 99,950."""

    def __init__(self, ids: QuerySet[Any, Any], per_page: int, *, count: int, more: bool) -> None:
        super().__init__(ids, per_page)
        self.ids = ids
        self.__dict__["count"] = count  # Paginator.count is a cached property
        self.more = more

    def page(self, number: Any) -> Page[Any]:
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        top = min(bottom + self.per_page, self.count)
        if not self.more and bottom > self.count // 2:
            backwards = self.ids.reverse()[self.count - top : self.count - bottom]
            rows = list(backwards)[::-1]
        else:
            rows = list(self.ids[bottom:top])
        return Page(rows, number, self)


def page_of(
    ids: QuerySet[Any, Any], number: str | None, per_page: int, *, ahead: int | None = None
) -> Page[Any]:
    """The page ``number`` (the last one for a number past the end, the first for
    anything that is not a page number) of ``ids``.

    With ``ahead``, the rows are counted only up to ``ahead`` past that page (a filter that
    matches 15,000 rows is not counted to the end for each page of 50); the paginator's
    ``more`` then says there may be more."""
    try:
        asked = max(int(number or 1), 1)
    except ValueError:
        asked = 1
    if ahead is None:
        count, more = ids.count(), False
    else:
        limit = asked * per_page + ahead
        count = ids[:limit].count()
        more = count >= limit
    return IdPaginator(ids, per_page, count=count, more=more).get_page(asked)
