#!/usr/bin/env python3
"""Drives headless Chromium over the DevTools protocol (--remote-debugging-pipe), for tests.

Reads one JSON command per line on stdin and answers one JSON line on stdout:
  {"op": "go", "url": "..."}                       load a page (waits for its load event)
  {"op": "fill", "selector": "...", "value": "..."} set an input's value (as typed)
  {"op": "select", "selector": "...", "value": "..."}
  {"op": "click", "selector": "...", "navigates": true}  click; wait for the next page when it navigates
  {"op": "wait", "js": "<expression>", "timeout_s": 10}   until the expression is true
  {"op": "eval", "js": "<expression>"}             -> {"value": ...}
  {"op": "shot", "path": "..."}                    full-page PNG screenshot
  {"op": "quit"}
Every answer is {"ok": true, ...} or {"ok": false, "error": "..."}. Standard library only.
"""
import base64, json, os, shutil, subprocess, sys, tempfile, time

class Browser:
    def __init__(self, chromium, width, height):
        self.profile = tempfile.mkdtemp(prefix="gavel-cdp-")
        to_chrome_r, self.to_chrome = os.pipe()
        self.from_chrome, from_chrome_w = os.pipe()
        # Chromium reads commands on fd 3 and writes answers on fd 4.
        def fds():
            read, write = os.dup(to_chrome_r), os.dup(from_chrome_w)  # above 4, so neither is clobbered
            os.dup2(read, 3)
            os.dup2(write, 4)
            os.set_inheritable(3, True)
            os.set_inheritable(4, True)
        self.process = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
             "--hide-scrollbars", "--remote-debugging-pipe", "--user-data-dir=" + self.profile,
             "--window-size=%d,%d" % (width, height), "about:blank"],
            preexec_fn=fds, pass_fds=(3, 4), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.buffer = b""
        self.next_id = 0
        self.events = []
        targets = self.call("Target.getTargets")["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        self.session = self.call("Target.attachToTarget", {"targetId": page["targetId"], "flatten": True})["sessionId"]
        self.call("Page.enable", session=True)
        self.call("Runtime.enable", session=True)
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=True)

    def read_message(self, deadline):
        while b"\0" not in self.buffer:
            if time.time() > deadline:
                raise TimeoutError("no answer from chromium")
            chunk = os.read(self.from_chrome, 1 << 20)
            if not chunk:
                raise EOFError("chromium closed the pipe")
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method, params=None, session=False, timeout=30):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        os.write(self.to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.time() + timeout
        while True:
            answer = self.read_message(deadline)
            if answer.get("id") == self.next_id:
                if "error" in answer:
                    raise RuntimeError("%s: %s" % (method, answer["error"].get("message")))
                return answer.get("result", {})
            self.events.append(answer)

    def wait_event(self, name, timeout=20):
        deadline = time.time() + timeout
        while True:
            for index, event in enumerate(self.events):
                if event.get("method") == name:
                    del self.events[:index + 1]
                    return event
            self.events.append(self.read_message(deadline))

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True}, session=True)
        if "exceptionDetails" in result:
            raise RuntimeError("script failed: %s" % result["exceptionDetails"].get("text"))
        return result.get("result", {}).get("value")

    def handle(self, command):
        op = command["op"]
        if op == "go":
            self.events.clear()
            self.call("Page.navigate", {"url": command["url"]}, session=True)
            self.wait_event("Page.loadEventFired")
            return {}
        if op in ("fill", "select"):
            found = self.evaluate(
                "(function(){var e=document.querySelector(%s); if(!e) return false; e.focus(); e.value=%s;"
                "e.dispatchEvent(new Event('input',{bubbles:true})); e.dispatchEvent(new Event('change',{bubbles:true})); return true;})()"
                % (json.dumps(command["selector"]), json.dumps(command["value"])))
            if not found:
                raise RuntimeError("no element %s" % command["selector"])
            return {}
        if op == "click":
            self.events.clear()
            found = self.evaluate("(function(){var e=document.querySelector(%s); if(!e) return false; e.click(); return true;})()"
                                  % json.dumps(command["selector"]))
            if not found:
                raise RuntimeError("no element %s" % command["selector"])
            if command.get("navigates", True):
                self.wait_event("Page.loadEventFired")
            return {}
        if op == "wait":
            deadline = time.time() + command.get("timeout_s", 10)
            while time.time() < deadline:
                if self.evaluate(command["js"]):
                    return {}
                time.sleep(0.2)
            raise TimeoutError("still false after %ss: %s" % (command.get("timeout_s", 10), command["js"]))
        if op == "eval":
            return {"value": self.evaluate(command["js"])}
        if op == "shot":
            shot = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, session=True)
            with open(command["path"], "wb") as output:
                output.write(base64.b64decode(shot["data"]))
            return {}
        raise ValueError("unknown op %s" % op)

    def close(self):
        try:
            self.call("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.profile, ignore_errors=True)

def main():
    chromium = sys.argv[1]
    width, height = (int(x) for x in (sys.argv[2] if len(sys.argv) > 2 else "1440x900").split("x"))
    browser = Browser(chromium, width, height)
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            command = json.loads(line)
            if command["op"] == "quit":
                print(json.dumps({"ok": True}), flush=True)
                break
            try:
                answer = browser.handle(command)
                answer["ok"] = True
            except Exception as error:
                answer = {"ok": False, "error": "%s: %s" % (type(error).__name__, error)}
            print(json.dumps(answer), flush=True)
    finally:
        browser.close()

if __name__ == "__main__":
    main()
