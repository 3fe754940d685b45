"""The agents' HTTP clients: one per thread, no more than the live threads, all closed at
shutdown (no network: making and closing a client opens no connection)."""

from __future__ import annotations

import threading

import httpx

from hive.agents.builtin.http_clients import close_clients, open_clients, thread_client


def _client_of_a_thread() -> httpx.Client:
    made: list[httpx.Client] = []
    thread = threading.Thread(target=lambda: made.append(thread_client()))
    thread.start()
    thread.join()
    return made[0]


def test_a_thread_keeps_its_client_and_another_thread_has_its_own() -> None:
    close_clients()
    mine = thread_client()

    assert thread_client() is mine
    assert _client_of_a_thread() is not mine


def test_clients_of_threads_that_are_gone_are_closed_when_the_next_is_made() -> None:
    close_clients()
    gone = [_client_of_a_thread() for _ in range(5)]

    assert all(c.is_closed for c in gone[:-1]), "each made closes the ones before it"
    thread_client()
    assert gone[-1].is_closed
    assert open_clients() == 1


def test_closing_the_clients_closes_every_one_and_a_later_call_makes_a_new_one() -> None:
    close_clients()
    mine = thread_client()
    held = threading.Event()
    done = threading.Event()
    others: list[httpx.Client] = []

    def hold() -> None:
        others.append(thread_client())
        held.set()
        done.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        held.wait(10)
        assert open_clients() == 2

        assert close_clients() == 2
        assert mine.is_closed and others[0].is_closed
        assert open_clients() == 0
        fresh = thread_client()
        assert fresh is not mine and not fresh.is_closed
    finally:
        done.set()
        thread.join()
