# run this program on each RPi to send a labelled image stream
import socket
import sys
import time

import numpy as np

from vidcast import imagezmq  # was: import imagezmq

FRAMES = int(sys.argv[2]) if len(sys.argv) > 2 else 100
sender = imagezmq.ImageSender(connect_to=sys.argv[1] if len(sys.argv) > 1 else 'tcp://127.0.0.1:5555')

rpi_name = socket.gethostname()  # send RPi hostname with each image
image = np.zeros((480, 640, 3), np.uint8)
time.sleep(0.1)  # allow camera sensor to warm up
for i in range(FRAMES):  # send images as stream until Ctrl-C
    image[:] = (i % 256, 128, 255 - i % 256)
    reply = sender.send_image(rpi_name, image)
    assert reply == b'OK'
    time.sleep(1 / 30)
sender.close()
