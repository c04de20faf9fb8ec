"""The request gunicorn serves is each greenlet's own: closing one connection leaves others."""

from types import SimpleNamespace

import gevent

from app.ingestion import connection


def served_request():
    request = SimpleNamespace(closed=False)
    request.force_close = lambda: setattr(request, "closed", True)
    return request


def test_each_greenlet_closes_only_the_connection_it_serves():
    requests = [served_request() for _ in range(3)]

    def serve(index):
        connection.serve(requests[index])
        gevent.sleep(0.01)  # the others run meanwhile, as other connections do
        if index == 1:
            connection.close_after_answer()

    gevent.joinall([gevent.spawn(serve, index) for index in range(3)], raise_error=True)
    assert [request.closed for request in requests] == [False, True, False]


def test_outside_gunicorn_there_is_nothing_to_close():
    gevent.spawn(connection.close_after_answer).get()
