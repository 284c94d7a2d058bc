# run this program on the Mac to display image streams from multiple RPis
import sys

from vidcast import imagezmq  # was: import imagezmq

WANTED = int(sys.argv[2]) if len(sys.argv) > 2 else 10
image_hub = imagezmq.ImageHub(open_port=sys.argv[1] if len(sys.argv) > 1 else 'tcp://*:5555')
received = 0
while received < WANTED:  # show streamed images until Ctrl-C
    rpi_name, image = image_hub.recv_image()
    assert image.shape == (480, 640, 3), image.shape
    received += 1  # instead of cv2.imshow(rpi_name, image): there is no screen here
    image_hub.send_reply(b'OK')
print(f"received {received} images from {rpi_name}", flush=True)
image_hub.close()
