# The original project's server.py (../shared/seed), headless, for `vidcast send --legacy`'s
# tests. Changed from the seed, and only this:
# - HEADLESS block: cv2.imshow/cv2.waitKey are no-ops (opencv-python-headless raises "not
#   implemented"); pyshine >= 0.0.9 calls putText putBText (same arguments), so the old name
#   is mapped to it; threading.activeCount is mapped to active_count where a Python lacks it.
# - The address: 127.0.0.1 and the port from argv (0 = any free one) instead of 192.168.x;
#   the bound address is printed after binding so the test can read the port.
# - RECORD lines: each unpickled frame is printed (count, shape, dtype) and its bytes saved to
#   the folder in argv[2], before putText draws on it.
# - The `except` is indented under its `try` (the seed's text had it one level too deep).
import sys
import os

import socket, cv2, pickle, struct
import imutils
import threading
import pyshine as ps
import cv2

# --- HEADLESS ---
cv2.imshow = lambda *args, **kwargs: None
cv2.waitKey = lambda *args, **kwargs: -1
if not hasattr(ps, "putText"):
    ps.putText = ps.putBText
if not hasattr(threading, "activeCount"):
    threading.activeCount = threading.active_count
# --- RECORD ---
record_dir = sys.argv[2]
record_lock = threading.Lock()
record_count = 0


def record(addr, frame):
    global record_count
    with record_lock:
        record_count += 1
        n = record_count
    with open(os.path.join(record_dir, f"frame-{n}.bgr"), "wb") as f:
        f.write(frame.tobytes())
    print(f"RECORD {n} shape={frame.shape} dtype={frame.dtype} from {addr}", flush=True)
# ---

server_socket = socket.socket(socket.AF_INET,socket.SOCK_STREAM)
host_name = socket.gethostname()
host_ip = "127.0.0.1"
print('HOST IP:',host_ip)
port = int(sys.argv[1])
socket_address = (host_ip,port)
server_socket.bind(socket_address)
server_socket.listen()
print("Listening at",server_socket.getsockname(), flush=True)


def show_client(addr,client_socket):
    try:
        print('CLIENT {} CONNECTED!'.format(addr))
        if client_socket:
            data = b""
            payload_size = struct.calcsize("Q")
            while True:
                while len(data) < payload_size:
                    packet = client_socket.recv(4*1024)
                    if not packet: break
                    data+=packet
                packed_msg_size = data[:payload_size]
                data = data[payload_size:]
                msg_size = struct.unpack("Q",packed_msg_size)[0]

                while len(data) < msg_size:
                    data += client_socket.recv(4*1024)
                frame_data = data[:msg_size]
                data = data[msg_size:]
                frame = pickle.loads(frame_data)
                record(addr, frame)
                text = f"CLIENT: {addr}"
                frame = ps.putText(frame,text,10,10,vspace=10,hspace=1,font_scale=0.7,
background_RGB=(255,0,0),text_RGB=(255,250,250))
                cv2.imshow(f"FROM {addr}",frame)
                key = cv2.waitKey(1) & 0xFF
                if key == ord('q'):
                    break
            client_socket.close()
    except Exception as e:
        print(f"CLIENT {addr} DISCONNECTED", flush=True)
        pass

while True:
    client_socket,addr = server_socket.accept()
    thread = threading.Thread(target=show_client, args=(addr,client_socket))
    thread.start()
    print("TOTAL CLIENTS ",threading.activeCount() - 1)
