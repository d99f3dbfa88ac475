#include "service/http/http_transport.h"

#include <future>
#include <memory>
#include <utility>

namespace dynamo_batcher {

HttpResponse HttpTransport::SendSync(HttpRequest request) {
  auto promise = std::make_shared<std::promise<HttpResponse>>();
  std::future<HttpResponse> future = promise->get_future();
  Send(std::move(request),
       [promise](HttpResponse response) { promise->set_value(std::move(response)); });
  return future.get();
}

}  // namespace dynamo_batcher
