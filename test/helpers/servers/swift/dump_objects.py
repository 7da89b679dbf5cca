"""Prints every object a test Swift holds on disk, as JSON lines {"key": "<container>/<object>", "data": base64},
read straight from the object server's device directory (name from the `user.swift.metadata` xattr), so a
test can read what the server holds synchronously.

Usage: dump_objects.py <device_dir>
"""
import base64
import json
import os
import pickle
import sys


def metadata(path):
    raw = b''
    index = 0
    while True:
        name = 'user.swift.metadata' + (str(index) if index else '')
        try:
            raw += os.getxattr(path, name)
        except OSError:
            break
        index += 1
    return pickle.loads(raw, encoding='bytes') if raw else {}


def main():
    root = os.path.join(sys.argv[1], 'objects')
    for directory, _, files in os.walk(root):
        for name in files:
            if not name.endswith('.data'):
                continue
            path = os.path.join(directory, name)
            meta = metadata(path)
            full = meta.get(b'name') or meta.get('name')
            if isinstance(full, bytes):
                full = full.decode('utf8')
            # /<account>/<container>/<object>
            parts = full.split('/', 3)
            with open(path, 'rb') as f:
                data = f.read()
            sys.stdout.write(json.dumps({'key': parts[2] + '/' + parts[3],
                                         'data': base64.b64encode(data).decode()}) + '\n')


main()
