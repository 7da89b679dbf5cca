"""An in-process stand-in for memcached in the test proxy's pipeline.

tempauth refuses to work without `swift.cache` in the request environment, and the proxy caches account and
container info there. A memcached server per test would be one more process to start and kill; this filter
keeps the same get/set/incr/delete calls in a dict with expiry, which is all a single proxy process needs.
"""
import time


class LocalCache(object):
    def __init__(self):
        self.store = {}

    def get(self, key, raise_on_error=False):
        entry = self.store.get(key)
        if entry is None:
            return None
        expires, value = entry
        if expires and expires < time.time():
            self.store.pop(key, None)
            return None
        return value

    def set(self, key, value, serialize=True, time=0, min_compress_len=0, raise_on_error=False):
        self.store[key] = (_expiry(time), value)

    def incr(self, key, delta=1, time=0):
        value = int(self.get(key) or 0) + delta
        self.store[key] = (_expiry(time), value)
        return value

    def decr(self, key, delta=1, time=0):
        return self.incr(key, -delta, time)

    def delete(self, key, server_key=None):
        self.store.pop(key, None)


def _expiry(ttl):
    return time.time() + ttl if ttl else 0


def filter_factory(global_conf, **local_conf):
    cache = LocalCache()

    def make(app):
        def middleware(env, start_response):
            env['swift.cache'] = cache
            return app(env, start_response)
        return middleware
    return make
