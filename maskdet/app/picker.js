function render({ model, el }) {
  el.classList.add("maskdet-picker");
  el.innerHTML = `<label class="fp-button"><input class="fp-input" type="file"/><span class="fp-label"></span></label>
                  <span class="fp-note"></span>`;
  const input = el.querySelector(".fp-input"), note = el.querySelector(".fp-note");
  const sync = () => {
    input.accept = model.get("accept");
    input.multiple = model.get("multiple");
    el.querySelector(".fp-label").textContent = model.get("description");
  };
  sync();
  model.on("change:description", sync);
  input.addEventListener("change", async () => {
    const files = Array.from(input.files || []);
    input.value = "";  // choosing the same file again fires change again
    if (!files.length) return;
    const total = files.reduce((sum, f) => sum + f.size, 0), limit = model.get("limit_bytes");
    if (total > limit) {
      const text = `${(total / 1048576).toFixed(1)} MB selected: over the ${(limit / 1048576).toFixed(0)} MB ` +
                   "limit per upload; pick fewer or smaller files, or use `maskdet predict` for big batches.";
      note.textContent = text;
      model.set("rejected", text);
      model.set("rejections", model.get("rejections") + 1);
      model.save_changes();
      return;
    }
    note.textContent = `sending ${files.length} file(s)...`;
    model.send({ type: "begin", count: files.length });
    for (const [index, file] of files.entries()) {
      const buffer = await file.arrayBuffer();
      model.send({ type: "file", name: file.name, size: file.size, index }, undefined, [buffer]);
    }
    model.send({ type: "end", count: files.length });
    note.textContent = "";
  });
}
export default { render };
