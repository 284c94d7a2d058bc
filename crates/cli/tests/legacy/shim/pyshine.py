# Stand-in for pyshine, put on PYTHONPATH by tests/legacy.rs only when the real one does not
# import: the original scripts use it only to draw a caption, which no test looks at.
def putBText(img, text, *args, **kwargs):
    return img


putText = putBText
