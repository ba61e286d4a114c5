"""Delivering batches to Kore and settling what became of every row.

A batch is recorded as pending before its upload and settled after, in one transaction. Kore
refuses a number it already has, so re-sending a batch is safe: a row left out of Kore's answer
is looked up in Kore's own list. Found there after a try whose outcome was unknown (a dropped
connection, a 5xx, a crash in an earlier run), it is adopted as ours; found after a clean first
try, it was created by someone else and is reported as ``already_in_kore``; not found, Kore
refused it (``kore_refused``). A 400 for the whole file is narrowed down to the rows at fault.
"""

from __future__ import annotations

import logging
from collections.abc import Container, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from connector.contacts import Contact
from connector.crash import crash_point
from connector.errors import KoreRejected
from connector.kore.client import KoreClient
from connector.kore.wire import batch_csv, kore_row
from connector.phones import join_key, mask
from connector.report import contact_rejection
from connector.settings import KoreSettings
from connector.state import Delivery, PendingBatch
from connector.sync.context import BatchSettled, RowRejected, RunContext, counted

log = logging.getLogger(__name__)


def kore_key(contact: dict[str, Any], expected: Container[str] = ()) -> str | None:
    """The phone key of a contact as Kore lists it (``cellPhone.phoneNumber``, in full or
    national form beside ``countryCode``). A number that is exactly one of the ``expected``
    keys (Kore's answer to our upload gives back the E.164 we sent) needs no parsing."""
    phone = contact.get("cellPhone") or {}
    if not isinstance(phone, dict):
        return None
    number = str(phone.get("phoneNumber") or "")
    if number in expected:
        return number
    return join_key(number, str(phone.get("countryCode") or ""))


ADOPTION_SKEW = timedelta(seconds=60)
"""How far Kore's clock may trail ours when judging whether a contact is younger than our batch."""


@dataclass(frozen=True, slots=True)
class Found:
    """A contact in Kore's list: its id and when Kore says it was created (None when unsaid)."""

    kore_id: str | None
    created_at: datetime | None


class KoreDirectory:
    """Kore's contacts by phone key, read only as far as a look-up needs.

    Pages of Kore's list are read only when an outcome must be looked up, and only until every
    number looked for is found (or the list ends); what was read is kept for the run, along with
    what the run creates. After a try whose outcome is unknown, which may have created contacts
    unseen, the list is read afresh.
    """

    def __init__(self, client: KoreClient) -> None:
        self._client = client
        self._index: dict[str, Found] = {}
        self._pages: Iterator[list[dict[str, Any]]] | None = None
        self._complete = False

    def invalidate(self) -> None:
        self._index, self._pages, self._complete = {}, None, False

    def remember(self, created: dict[str, str | None]) -> None:
        """Contacts this run created, once Kore's list is being read (pages read later have
        them anyway): the index holds no more than Kore's list as far as it was read."""
        if self._pages is not None:
            stamp = datetime.now(UTC)
            self._index.update({key: Found(kore_id, stamp) for key, kore_id in created.items()})

    def forget(self, keys: Sequence[str]) -> None:
        for key in keys:
            self._index.pop(key, None)

    def find(self, keys: Sequence[str]) -> dict[str, Found]:
        missing = {key for key in keys if key not in self._index}
        if missing and not self._complete:
            if self._pages is None:
                self._pages = self._client.contact_pages()
            for page in self._pages:
                for contact in page:
                    key = kore_key(contact)
                    if key and contact.get("status", "ACTIVE") == "ACTIVE":
                        self._index[key] = Found(contact.get("id"), _when(contact.get("createdAt")))
                        missing.discard(key)
                if not missing:
                    break
            else:
                self._complete = True
        return {key: self._index[key] for key in keys if key in self._index}


def _when(value: object) -> datetime | None:
    try:
        stamp = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


@dataclass
class _Outcome:
    """What became of one batch's rows. It is counted and reported only once the batch is
    settled: a batch that fails half way stays in flight, and the run that settles it counts
    it then, so no row is counted twice, nor counted as sent when no answer settled it."""

    delivered: list[Delivery] = field(default_factory=list)
    refused: list[tuple[Contact, str]] = field(default_factory=list)
    """Rows Kore neither created nor has, with what it said."""


class Deliverer:
    """Uploads a run's batches to Kore and settles each in the tenant's (fenced) state."""

    def __init__(self, ctx: RunContext, *, client: KoreClient) -> None:
        self.ctx = ctx
        self.state = ctx.state
        self.client = client
        self.counters = ctx.counters
        self.settings: KoreSettings = ctx.settings.kore
        self.directory = KoreDirectory(client)
        self._uncertain = False
        self._pending_at = datetime.now(UTC)

    def send(self, contacts: Sequence[Contact]) -> None:
        """A new batch: recorded as pending, uploaded, settled. It is numbered among the
        batches of the run's plan, or among this run's uploads when it has none (reconcile)."""
        pending_at = datetime.now(UTC)
        batch_id = self.state.add_batch(self.ctx.run_id, contacts, at=pending_at)
        done, of = self.ctx.sending or (self.counters.batches, None)
        self._settle(batch_id, contacts, pending_at, (done + 1, of), uncertain=False, resent=False)

    def resume(self, batch: PendingBatch, *, number: int, of: int) -> None:
        """A batch an earlier run left pending (``number`` of ``of`` such): sent again, its rows
        adopted where Kore has them."""
        log.info(
            "re-sending batch %d of %d left in flight by run %s: %s",
            number,
            of,
            batch.run_id,
            counted(len(batch.contacts), "row"),
        )
        place = (number, of)
        uncertain = batch.attempts > 0
        self._settle(batch.id, batch.contacts, batch.created_at, place, uncertain, resent=True)

    def _settle(
        self,
        batch_id: int,
        contacts: Sequence[Contact],
        pending_at: datetime,
        place: tuple[int, int | None],
        uncertain: bool,
        *,
        resent: bool,
    ) -> None:
        self._uncertain = uncertain
        self._pending_at = pending_at
        outcome = _Outcome()
        self._upload(batch_id, contacts, outcome)
        crash_point("before_settle")
        self.state.settle_batch(batch_id, self.ctx.run_id, outcome.delivered)
        self._count(outcome, len(contacts), resent=resent)
        number, of = place
        self.ctx.emit(
            BatchSettled(
                self.ctx.tenant,
                batch_id,
                number,
                of,
                len(contacts),
                len(outcome.delivered),
                resent,
            )
        )

    def _count(self, outcome: _Outcome, rows: int, *, resent: bool) -> None:
        """A settled batch into the counters and the report: its rows were sent, and each was
        created, adopted, found in Kore already, or refused."""
        counters = self.counters
        counters.sent += rows
        if resent:
            counters.pending_resent += rows
        else:
            counters.batches += 1
        for delivery in outcome.delivered:
            if delivery.origin == "created":
                counters.created += 1
            elif delivery.origin == "adopted":
                counters.adopted += 1
            else:
                counters.already_in_kore += 1
                self._reject(
                    delivery.contact,
                    "already_in_kore",
                    "Kore already had a contact with this number; this row was not created",
                )
        for contact, detail in outcome.refused:
            counters.kore_refused += 1
            self._refused(contact, detail)

    def _upload(self, batch_id: int, contacts: Sequence[Contact], outcome: _Outcome) -> None:
        self.state.note_attempt(batch_id)
        body = batch_csv([kore_row(c, self.settings) for c in contacts])
        try:
            crash_point("before_upload")
            result = self.client.import_contacts(body)
            crash_point("after_upload")
        except KoreRejected as exc:
            self._narrow(batch_id, contacts, outcome, exc)
            return
        finally:
            self.counters.uploads += 1
        self._uncertain = self._uncertain or result.uncertain
        created: dict[str, str | None] = {}
        sent = {c.key for c in contacts}
        for item in result.created:
            if item.get("status", "ACTIVE") != "ACTIVE" or item.get("error") or item.get("errors"):
                continue  # an answer that lists refused rows too: they were not created
            key = kore_key(item, sent)
            if key:
                created[key] = item.get("id")
        if result.uncertain:
            self.directory.invalidate()
        else:
            self.directory.remember(created)
        missing = []
        for contact in contacts:
            if contact.key in created:
                outcome.delivered.append(Delivery(contact, created[contact.key], "created"))
            else:
                missing.append(contact)
        if missing:
            found = self.directory.find([c.key for c in missing])
            self._known(missing, found, outcome)
            outcome.refused += [
                (contact, "Kore left this row out of the contacts it created")
                for contact in missing
                if contact.key not in found
            ]

    def _narrow(
        self,
        batch_id: int,
        contacts: Sequence[Contact],
        outcome: _Outcome,
        exc: KoreRejected,
    ) -> None:
        """Kore refused the whole file: drop rows it already has, then halve until the culprits show."""
        if exc.uncertain:
            self._uncertain = True
            self.directory.invalidate()
        found = self.directory.find([c.key for c in contacts])
        self._known(contacts, found, outcome)
        rest = [c for c in contacts if c.key not in found]
        if not rest:
            return
        if len(rest) < len(contacts):
            self._upload(batch_id, rest, outcome)
        elif len(rest) == 1:
            outcome.refused.append((rest[0], f"HTTP {exc.status}: {exc.detail}"))
        else:
            log.info(
                "Kore refused a file of %s (HTTP %d); splitting it",
                counted(len(rest), "row"),
                exc.status,
            )
            middle = len(rest) // 2
            self._upload(batch_id, rest[:middle], outcome)
            self._upload(batch_id, rest[middle:], outcome)

    def _known(
        self, contacts: Sequence[Contact], found: dict[str, Found], outcome: _Outcome
    ) -> None:
        """Rows Kore has: adopted when an earlier try of ours may have created them and Kore
        created them after the batch was recorded; otherwise Kore had them already."""
        for contact in contacts:
            there = found.get(contact.key)
            if there is None:
                continue
            ours = there.created_at is not None and (
                there.created_at >= self._pending_at - ADOPTION_SKEW
            )
            adopted = self._uncertain and ours
            outcome.delivered.append(
                Delivery(contact, there.kore_id, "adopted" if adopted else "found")
            )
            if adopted:
                log.debug(
                    "%s row %d: adopted %s, created by an earlier try",
                    contact.source,
                    contact.row,
                    mask(contact.key),
                )
            else:
                log.debug(
                    "%s row %d: Kore already had %s", contact.source, contact.row, mask(contact.key)
                )

    def _refused(self, contact: Contact, detail: str) -> None:
        log.warning(
            "%s row %d: Kore refused %s: %s", contact.source, contact.row, mask(contact.key), detail
        )
        self._reject(contact, "kore_refused", detail)

    def _reject(self, contact: Contact, reason: str, detail: str) -> None:
        self.ctx.emit(RowRejected(self.ctx.tenant, contact_rejection(contact, reason, detail)))

    def update(self, changed: Sequence[tuple[Contact, str]]) -> None:
        """Bring Kore contacts whose names changed in the CRM up to date; the state takes the new
        values only for the contacts Kore confirms (an answer that lists no ids confirms all)."""
        size = self.settings.batch_size
        for start in range(0, len(changed), size):
            self.ctx.check_stop()
            chunk = changed[start : start + size]
            confirmed = self.client.bulk_update([self._update_body(c, i) for c, i in chunk])
            crash_point("mid_update")
            done = [c for c, kore_id in chunk if confirmed is None or kore_id in confirmed]
            self.state.record_updates(self.ctx.run_id, done)
            self.counters.updated += len(done)
            for contact, kore_id in chunk:
                if confirmed is not None and kore_id not in confirmed:
                    self.counters.update_refused += 1
                    self._refused(
                        contact,
                        f"Kore did not update contact {kore_id}; it may have been deleted there "
                        "('reconcile' shows what Kore is missing)",
                    )

    def _update_body(self, contact: Contact, kore_id: str) -> dict[str, object]:
        first, last, salutation, _, code, extension = kore_row(contact, self.settings)
        return {
            "id": kore_id,
            "firstName": first,
            "lastName": last,
            "fullName": f"{first} {last}".strip(),
            "salutation": salutation,
            "cellPhone": {"phoneNumber": contact.key, "countryCode": code, "extension": extension},
        }

    def delete(self, doomed: Sequence[tuple[str, str | None]]) -> list[str]:
        """Delete ``(key, kore_id)`` contacts from Kore and forget their numbers; returns the
        keys deleted. An id Kore says it could not delete is deleted all the same when Kore's
        list no longer has it (an earlier try, or someone in Kore, deleted it first); a number
        recorded without an id is looked up in Kore's list."""
        size = self.settings.batch_size
        deleted: list[str] = []
        for start in range(0, len(doomed), size):
            self.ctx.check_stop()
            chunk = list(doomed[start : start + size])
            if any(kore_id is None for _, kore_id in chunk):
                found = self.directory.find([key for key, kore_id in chunk if kore_id is None])
                chunk = [(k, i or (found[k].kore_id if k in found else "")) for k, i in chunk]
            ids = [kore_id for _, kore_id in chunk if kore_id]
            failed = self.client.bulk_delete(ids) if ids else set()
            crash_point("mid_delete")
            if failed:
                self.directory.invalidate()
                still = {f.kore_id for f in self.directory.find([k for k, _ in chunk]).values()}
                failed &= still
            gone = [key for key, kore_id in chunk if kore_id not in failed]
            self.state.forget(gone)
            self.directory.forget(gone)
            deleted += gone
            self.counters.deleted += len(gone)
            self.counters.delete_failed += len(chunk) - len(gone)
            for key, kore_id in chunk:
                if kore_id in failed:
                    log.warning("Kore did not delete contact %s (%s)", kore_id, mask(key))
        return deleted
