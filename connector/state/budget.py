"""One API of one bot, one budget: request slots taken from the state database.

Tenants that call one bot (host and bot id) share each API's limits, in this process and in every
replica on the same state database. Taking a slot locks the budget's row (``SELECT … FOR
UPDATE`` on PostgreSQL; SQLite's write lock does the same), reads the request times still inside
the longest window, and records a new one only if every window has room and the last request is
one spacing back. Requests are at most about one a second, so one short transaction per request
is cheap. Request times are the state database's clock (``database_now``), read once the row is
locked: replicas whose own clocks disagree still share one set of windows. How much slower than the configured rate to go after a 429 is learnt per process
(``Throttle``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from connector.kore.pacing import Limits, Throttle, delay_for
from connector.state.store import aware, database_now
from connector.state.tables import bot_budgets, bot_uploads

if TYPE_CHECKING:
    from connector.state.store import Store

log = logging.getLogger(__name__)


class SharedPacer:
    """The ``Pacing`` of one bot, kept in the state database; ``sleep`` may raise to stop."""

    def __init__(
        self, store: Store, bot: str, limits: Limits, *, sleep: Callable[[float], None]
    ) -> None:
        self._store = store
        self._bot = bot[:300]
        self._limits = limits
        self._sleep = sleep
        self._known = False
        self.throttle = Throttle(limits)

    def wait(self) -> float:
        waited = 0.0
        while (delay := self.take()) > 0:
            log.debug("pacing: waiting %.2fs for the bot's shared rate limit", delay)
            self._sleep(delay)
            waited += delay
        return waited

    def limited(self, retry_after: float | None) -> float:
        return self.throttle.limited(retry_after)

    def answered(self) -> None:
        self.throttle.answered()

    def take(self) -> float:
        """Take a slot now (0.0) or say how many seconds until one is free."""
        if self.throttle.paused() > 0:
            return self.throttle.paused()
        if not self._known:
            self._register()
        longest = max(window for window, _ in self._limits)
        with self._store.transaction() as conn:
            conn.execute(
                select(bot_budgets.c.bot).where(bot_budgets.c.bot == self._bot).with_for_update()
            )
            stamp = database_now(conn)
            conn.execute(
                delete(bot_uploads).where(
                    bot_uploads.c.bot == self._bot,
                    bot_uploads.c.at <= stamp - timedelta(seconds=longest),
                )
            )
            sent = [
                _seconds(at)
                for (at,) in conn.execute(
                    select(bot_uploads.c.at)
                    .where(bot_uploads.c.bot == self._bot)
                    .order_by(bot_uploads.c.at)
                )
            ]
            delay = delay_for(sent, stamp.timestamp(), self._limits, share=self.throttle.share)
            if delay <= 0:
                conn.execute(insert(bot_uploads).values(bot=self._bot, at=stamp))
        return delay

    def _register(self) -> None:
        try:
            with self._store.engine.begin() as conn:
                if conn.execute(select(bot_budgets).where(bot_budgets.c.bot == self._bot)).first():
                    self._known = True
                    return
                conn.execute(insert(bot_budgets).values(bot=self._bot))
        except IntegrityError:
            pass  # another process registered the bot at the same moment
        except SQLAlchemyError as exc:
            raise self._store.error(exc) from exc
        self._known = True


def _seconds(at: datetime) -> float:
    return (aware(at) or datetime.now(UTC)).timestamp()
