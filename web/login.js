// The development sign-in page (wakili serve --dev): mints a token, books a consultation when
// asked, and opens the call page with the token in the URL fragment (never sent to the server).

const $ = (id) => document.getElementById(id);

$("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("error").hidden = true;
  try {
    const minted = await post("/api/v1/dev/token", {
      userId: $("user-id").value.trim(),
      role: $("role").value,
      name: $("name").value.trim() || undefined,
    });
    let consultation = $("consultation").value.trim();
    if (!consultation) {
      if ($("role").value !== "lawyer") {
        throw new Error("give the consultation id (only lawyers book here)");
      }
      const booked = await post(
        "/api/v1/consultations",
        {
          clientId: $("client-id").value.trim(),
          scheduledAt: new Date(Date.now() + 60_000).toISOString(),
          durationMinutes: 30,
          title: "Development consultation",
        },
        minted.token,
      );
      consultation = booked.id;
    }
    const link = `/c/${encodeURIComponent(consultation)}`;
    $("links").textContent = `Consultation ${consultation}: the other party signs in here with this id.`;
    location.assign(`${link}#token=${encodeURIComponent(minted.token)}`);
  } catch (error) {
    $("error").textContent = error.message;
    $("error").hidden = false;
  }
});

async function post(path, body, token) {
  const headers = { "content-type": "application/json" };
  if (token) {
    headers.authorization = `Bearer ${token}`;
  }
  const response = await fetch(path, { method: "POST", headers, body: JSON.stringify(body) });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(answer?.error?.message ?? `${path}: ${response.status}`);
  }
  return answer;
}
