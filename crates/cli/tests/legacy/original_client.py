# The original project's client.py (../shared/seed), headless, for the hub's legacy ingest
# test. Changed from the seed, and only this:
# - The webcam line: the video file in argv[1] (the seed's own commented-out alternative).
# - The address: 127.0.0.1 and the port in argv[2] instead of 192.168.x.
# - HEADLESS block: cv2.imshow/cv2.waitKey are no-ops (opencv-python-headless raises "not
#   implemented").
import sys

import socket,cv2, pickle,struct
import pyshine as ps
import imutils

# --- HEADLESS ---
cv2.imshow = lambda *args, **kwargs: None
cv2.waitKey = lambda *args, **kwargs: -1
# ---

camera = False
if camera == True:
    vid = cv2.VideoCapture(0)
else:
    vid = cv2.VideoCapture(sys.argv[1])
client_socket = socket.socket(socket.AF_INET,socket.SOCK_STREAM)
host_ip = '127.0.0.1'

port = int(sys.argv[2])
client_socket.connect((host_ip,port))


if client_socket:
    while (vid.isOpened()):
        try:
            img, frame = vid.read()
            frame = imutils.resize(frame,width=380)
            a = pickle.dumps(frame)
            message = struct.pack("Q",len(a))+a
            client_socket.sendall(message)
            cv2.imshow(f"T0: {host_ip}",frame)
            key = cv2.waitKey(1) & 0xFF
            if key == ord("q"):
                client_socket.close()
        except:
            print('VIDEO FINISHED!')
            break
